package config

import (
	"strings"
	"testing"
)

// s3Base is a valid S3 configuration against a local endpoint.
const s3Base = `version: 0.1
storage:
  s3:
    bucket: cache
    regionendpoint: http://127.0.0.1:9000
    region: us-east-1
    accesskey: AKIDEXAMPLE
    secretkey: ` + secretPassword + `
    forcepathstyle: true
    secure: false
    v4auth: true
    chunksize: 5242880
    rootdirectory: /mirror
proxy:
  statedirectory: /var/lib/proxy
`

func TestS3(t *testing.T) {
	cfg, err := Parse([]byte(s3Base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Driver() != DriverS3 {
		t.Errorf("Driver() = %q", cfg.Storage.Driver())
	}
	if cfg.Storage.Filesystem.RootDirectory != "" {
		t.Errorf("the default filesystem root stayed beside s3: %q", cfg.Storage.Filesystem.RootDirectory)
	}
	// Parameters reach the driver as decoded, typed as YAML gives them.
	if cfg.Storage.S3["forcepathstyle"] != true || cfg.Storage.S3["chunksize"] != 5242880 || cfg.Storage.S3["bucket"] != "cache" {
		t.Errorf("parameters = %v", cfg.Storage.S3)
	}
	if got := cfg.StateDir(); got != "/var/lib/proxy" {
		t.Errorf("StateDir() = %q", got)
	}
	if got := cfg.HostedObjectRoot(); got != "/mirror/hosted" {
		t.Errorf("HostedObjectRoot() = %q", got)
	}
	if p := cfg.Storage.DriverParams("/mirror/hosted"); p["rootdirectory"] != "/mirror/hosted" || cfg.Storage.ObjectRoot() != "/mirror" {
		t.Errorf("DriverParams changed the original or missed the root: %v %v", p, cfg.Storage.S3)
	}
	if d := cfg.Storage.Describe(); d != "s3://cache/mirror at 127.0.0.1:9000" || strings.Contains(d, secretPassword) {
		t.Errorf("Describe() = %q", d)
	}
	fs, err := Parse([]byte("version: 0.1\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if fs.Storage.Driver() != DriverFilesystem || fs.StateDir() != "data/_proxy" {
		t.Errorf("filesystem: driver %q, state dir %q", fs.Storage.Driver(), fs.StateDir())
	}
}

func TestS3Env(t *testing.T) {
	env := []string{
		"REGISTRY_STORAGE_S3_BUCKET=other",
		"REGISTRY_STORAGE_S3_SECURE=true",
		"REGISTRY_STORAGE_S3_SECRETKEY=" + secretPassword,
	}
	cfg, err := Parse([]byte(s3Base), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.S3["bucket"] != "other" || cfg.Storage.S3["secure"] != true {
		t.Errorf("parameters = %v", cfg.Storage.S3)
	}
	// The embedded default has a filesystem section; an empty variable clears it.
	env = []string{
		"REGISTRY_STORAGE_FILESYSTEM=",
		"REGISTRY_STORAGE_S3_BUCKET=b",
		"REGISTRY_STORAGE_S3_REGION=eu-west-1",
		"REGISTRY_PROXY_STATEDIRECTORY=/state",
	}
	if _, err := Load("", env); err != nil {
		t.Errorf("default file with s3 from the environment: %v", err)
	}
	_, err = Load("", env[1:])
	if e := asConfigError(t, err); e.Key != "storage" || !strings.Contains(e.Msg, "exactly one") {
		t.Errorf("filesystem from the default file and s3 from the environment: %v", err)
	}
}

func TestS3Errors(t *testing.T) {
	testDriverErrors(t, s3Base, []driverErrorCase{
		{"both drivers", "storage:\n", "storage:\n  filesystem: {rootdirectory: /data}\n", "storage", "exactly one"},
		{"unknown key", "    bucket: cache\n", "    bucket: cache\n    buckett: x\n", "storage.s3.buckett", MsgUnknownKey},
		{"no bucket", "    bucket: cache\n", "", "storage.s3.bucket", "required"},
		{"no region", "    regionendpoint: http://127.0.0.1:9000\n    region: us-east-1\n", "", "storage.s3.region", "required"},
		{"bad endpoint", "http://127.0.0.1:9000", "127.0.0.1:9000", "storage.s3.regionendpoint", "invalid URL"},
		{"ftp endpoint", "http://127.0.0.1:9000", "ftp://127.0.0.1:9000", "storage.s3.regionendpoint", "http or https"},
		{"bad bool", "secure: false", "secure: maybe", "storage.s3.secure", "true or false"},
		{"bad int", "chunksize: 5242880", "chunksize: big", "storage.s3.chunksize", "integer"},
		{"small chunks", "chunksize: 5242880", "chunksize: 1024", "storage.s3.chunksize", "at least"},
		{"relative root", "rootdirectory: /mirror", "rootdirectory: mirror", "storage.s3.rootdirectory", `start with "/"`},
		{"secret not a string", "secretkey: " + secretPassword, "secretkey: [" + secretPassword + "]", "storage.s3.secretkey", "expected a string"},
		{"no state directory", "  statedirectory: /var/lib/proxy\n", "", "proxy.statedirectory", "required with storage.s3"},
		{"relative hosted root", "proxy:\n", "hosted: {rootdirectory: hosted}\nproxy:\n", "hosted.rootdirectory", "key prefix"},
	})
	// The filesystem driver has its state in its root: statedirectory is refused.
	_, err := Parse([]byte("version: 0.1\nproxy: {statedirectory: /s}\n"), nil)
	if e := asConfigError(t, err); e.Key != "proxy.statedirectory" {
		t.Errorf("statedirectory with filesystem: %v", err)
	}
}
