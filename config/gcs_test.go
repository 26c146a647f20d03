package config

import "testing"

// gcsBase is a valid gcs configuration with an inline service account key.
const gcsBase = `version: 0.1
storage:
  gcs:
    bucket: cache
    rootdirectory: /mirror
    chunksize: 5242880
    credentials:
      type: service_account
      project_id: p
      client_email: proxy@p.iam.gserviceaccount.com
      private_key: ` + secretPassword + `
proxy:
  statedirectory: /var/lib/proxy
`

func TestGCS(t *testing.T) {
	cfg, err := Parse([]byte(gcsBase), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Driver() != DriverGCS || !cfg.Storage.ObjectStore() || cfg.Storage.Filesystem.RootDirectory != "" {
		t.Errorf("Driver() = %q, filesystem root %q", cfg.Storage.Driver(), cfg.Storage.Filesystem.RootDirectory)
	}
	if got := cfg.HostedObjectRoot(); got != "/mirror/hosted" {
		t.Errorf("HostedObjectRoot() = %q", got)
	}
	if d := cfg.Storage.Describe(); d != "gs://cache/mirror" {
		t.Errorf("Describe() = %q", d)
	}
	env := []string{"REGISTRY_STORAGE_GCS_BUCKET=other", "REGISTRY_STORAGE_GCS_CHUNKSIZE=262144"}
	cfg, err = Parse([]byte(gcsBase), env)
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Storage.Params(); p["bucket"] != "other" || p["chunksize"] != 262144 {
		t.Errorf("parameters from the environment = %v", p)
	}
}

func TestGCSErrors(t *testing.T) {
	testDriverErrors(t, gcsBase, []driverErrorCase{
		{"unknown key", "    bucket: cache\n", "    bucket: cache\n    bukket: x\n", "storage.gcs.bukket", MsgUnknownKey},
		{"unknown credentials key", "      project_id: p\n", "      projectid: p\n", "storage.gcs.credentials.projectid", MsgUnknownKey},
		{"no bucket", "    bucket: cache\n", "", "storage.gcs.bucket", "required"},
		{"bad chunksize", "chunksize: 5242880", "chunksize: 300000", "storage.gcs.chunksize", "multiple of 262144"},
		{"chunksize not a number", "chunksize: 5242880", "chunksize: big", "storage.gcs.chunksize", "integer"},
		{"credentials not a mapping", "    credentials:\n", "    credentials: key.json\n    x:\n", "storage.gcs.credentials", "expected a mapping"},
		{"key not a string", "private_key: " + secretPassword, "private_key: [" + secretPassword + "]", "storage.gcs.credentials.private_key", "a string"},
		{"not a service account", "type: service_account", "type: authorized_user", "storage.gcs.credentials.type", "service_account"},
		{"no key", "      private_key: " + secretPassword + "\n", "", "storage.gcs.credentials.private_key", "required"},
		{"keyfile and credentials", "    bucket: cache\n", "    bucket: cache\n    keyfile: /k.json\n", "storage.gcs.credentials", "not both"},
		{"no state directory", "  statedirectory: /var/lib/proxy\n", "", "proxy.statedirectory", "required with storage.gcs"},
		{"beside s3", "storage:\n", "storage:\n  s3: {bucket: b, region: r}\n", "storage", "both s3 and gcs"},
		{"beside filesystem", "storage:\n", "storage:\n  filesystem: {rootdirectory: /data}\n", "storage", "exactly one"},
	})
}
