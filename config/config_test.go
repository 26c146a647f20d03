package config

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/testpki"
)

// secretPassword must never appear in an error message.
const secretPassword = "hunter2-Sup3rSecret"

// mustParse parses data with environ and fails the test on error.
func mustParse(t *testing.T, data string, environ ...string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(data), environ)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// asConfigError asserts that err is a *Error.
func asConfigError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("Parse succeeded, want an error")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	return e
}

func TestDefault(t *testing.T) {
	cfg := mustParse(t, string(Default))
	checks := []struct {
		name      string
		got, want any
	}{
		{"version", cfg.Version, "0.1"},
		{"log.level", cfg.Log.Level, "info"},
		{"log.formatter", cfg.Log.Formatter, "text"},
		{"rootdirectory", cfg.Storage.Filesystem.RootDirectory, "./data"},
		{"delete.enabled", cfg.Storage.Delete.Enabled, false},
		{"http.addr", cfg.HTTP.Addr, ":5000"},
		{"http.net", cfg.HTTP.Net, "tcp"},
		{"http.draintimeout", cfg.HTTP.DrainTimeout, 30 * time.Second},
		{"proxy.remoteurl", cfg.Proxy.RemoteURL, "https://registry-1.docker.io"},
		{"proxy.ttl", cfg.Proxy.TTL, 168 * time.Hour},
		{"proxy.tagfreshness", cfg.Proxy.TagFreshness, time.Duration(0)},
		{"proxy.maxmanifestsize", cfg.Proxy.MaxManifestSize, ByteSize(4 << 20)},
		{"proxy.timeouts.connect", cfg.Proxy.Timeouts.Connect, 10 * time.Second},
		{"proxy.timeouts.responseheader", cfg.Proxy.Timeouts.ResponseHeader, 30 * time.Second},
		{"proxy.timeouts.stall", cfg.Proxy.Timeouts.Stall, 60 * time.Second},
		{"proxy.retries", cfg.Proxy.Retries, 3},
		{"proxy.username", cfg.Proxy.Username, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The embedded file and the built-in defaults agree.
	if minimal := mustParse(t, "version: 0.1"); !reflect.DeepEqual(cfg, minimal) {
		t.Errorf("default.yml = %+v\nbuilt-in defaults = %+v", cfg, minimal)
	}
	loaded, err := Load("", nil)
	if err != nil || !reflect.DeepEqual(loaded, cfg) {
		t.Errorf("Load(\"\") = %+v, %v; want %+v", loaded, err, cfg)
	}
}

// distributionProxyConfig is the registry:2 image's config.yml with the
// proxy section of distribution's mirror documentation.
const distributionProxyConfig = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
proxy:
  remoteurl: https://registry-1.docker.io
  username: alice
  password: ` + secretPassword + `
  ttl: 168h
`

func TestDistributionProxyConfig(t *testing.T) {
	cfg := mustParse(t, distributionProxyConfig)
	if got := cfg.Log.Fields["service"]; got != "registry" {
		t.Errorf("log.fields.service = %v", got)
	}
	if cfg.Storage.Cache.BlobDescriptor != "inmemory" {
		t.Errorf("blobdescriptor = %q", cfg.Storage.Cache.BlobDescriptor)
	}
	if cfg.Storage.Filesystem.RootDirectory != "/var/lib/registry" {
		t.Errorf("rootdirectory = %q", cfg.Storage.Filesystem.RootDirectory)
	}
	if got := cfg.HTTP.Headers["X-Content-Type-Options"]; !reflect.DeepEqual(got, []string{"nosniff"}) {
		t.Errorf("headers = %v", cfg.HTTP.Headers)
	}
	if _, ok := cfg.Health["storagedriver"]; !ok {
		t.Errorf("health = %v", cfg.Health)
	}
	p := cfg.Proxy
	if p.Username != "alice" || p.Password != secretPassword || p.TTL != 168*time.Hour {
		t.Errorf("proxy = %+v", p)
	}
}

func TestAcceptedValues(t *testing.T) {
	caFile := writeCAFile(t)
	tests := []struct {
		name  string
		yaml  string
		check func(*Config) bool
	}{
		{"ttl in nanoseconds", "proxy: {ttl: 3600000000000}", func(c *Config) bool { return c.Proxy.TTL == time.Hour }},
		{"ttl compound", "proxy: {ttl: 1m30s}", func(c *Config) bool { return c.Proxy.TTL == 90*time.Second }},
		{"ttl zero disables expiry", "proxy: {ttl: 0}", func(c *Config) bool { return c.Proxy.TTL == 0 }},
		{"null keeps default", "proxy: {ttl: }", func(c *Config) bool { return c.Proxy.TTL == DefaultTTL }},
		{"maxmanifestsize MiB", "proxy: {maxmanifestsize: 8MiB}", func(c *Config) bool { return c.Proxy.MaxManifestSize == 8<<20 }},
		{"maxmanifestsize bytes", "proxy: {maxmanifestsize: 1048576}", func(c *Config) bool { return c.Proxy.MaxManifestSize == 1<<20 }},
		{"retries zero", "proxy: {retries: 0}", func(c *Config) bool { return c.Proxy.Retries == 0 }},
		{"level WARNING", "log: {level: WARNING}", func(c *Config) bool { return c.Log.Level == "warn" }},
		{"formatter json", "log: {formatter: json, accesslog: {disabled: true}}", func(c *Config) bool {
			return c.Log.Formatter == "json" && c.Log.AccessLog.Disabled
		}},
		{"empty auth section", "auth: {}\nmiddleware:", func(*Config) bool { return true }},
		{"empty storage.filesystem", "storage: {filesystem: , delete: {enabled: true}}", func(c *Config) bool {
			return c.Storage.Filesystem.RootDirectory == DefaultRootDirectory && c.Storage.Delete.Enabled
		}},
		{"maintenance", "storage: {maintenance: {uploadpurging: {enabled: true, age: 168h, interval: 24h, dryrun: false}, readonly: {enabled: false}}}",
			func(c *Config) bool { return c.Storage.Maintenance.UploadPurging.Age == 168*time.Hour }},
		{"ignored sections", "reporting: {bugsnag: {apikey: x}}\nvalidation: {disabled: true}\ncompatibility: {schema1: {enabled: true}}",
			func(c *Config) bool { return c.Validation["disabled"] == true }},
		{"unix socket", "http: {net: unix, addr: /run/proxy.sock}", func(c *Config) bool { return c.HTTP.Addr == "/run/proxy.sock" }},
		{"tls", "http: {tls: {certificate: c.pem, key: k.pem, clientcas: [ca.pem], minimumtls: tls1.3}}",
			func(c *Config) bool { return c.HTTP.TLS.Enabled() && c.HTTP.TLS.MinVersion() == tls.VersionTLS13 }},
		{"http extras", "http: {host: 'https://mirror.example', prefix: /mirror, secret: s, relativeurls: true, http2: {disabled: true}, h2c: {enabled: true}, debug: {addr: 'localhost:5001', prometheus: {enabled: true, path: /metrics}}}",
			func(c *Config) bool { return c.HTTP.Debug.Prometheus.Path == "/metrics" && c.HTTP.H2C.Enabled }},
		{"cafile", "proxy: {cafile: '" + caFile + "', authhosts: [auth.example.com, 'token.example:8443']}",
			func(c *Config) bool { return c.Proxy.CAFile == caFile && len(c.Proxy.AuthHosts) == 2 }},
		{"remoteurl trailing slash", "proxy: {remoteurl: 'http://upstream.local:5000/'}",
			func(c *Config) bool { return c.Proxy.RemoteURL == "http://upstream.local:5000" }},
		{"merge key", "proxy:\n  timeouts:\n    <<: {connect: 1s, stall: 2s}\n    stall: 3s", func(c *Config) bool {
			return c.Proxy.Timeouts.Connect == time.Second && c.Proxy.Timeouts.Stall == 3*time.Second
		}},
		{"alias", "log:\n  fields: &f {a: 1}\nhealth: *f", func(c *Config) bool { return c.Health["a"] == 1 }},
		{"console on by default", "", func(c *Config) bool { return !c.UI.Disabled }},
		{"console off", "ui: {disabled: true}", func(c *Config) bool { return c.UI.Disabled }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, "version: 0.1\n"+tt.yaml)
			if !tt.check(cfg) {
				t.Errorf("unexpected config: %+v", cfg)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		yaml string // appended to "version: 0.1\n" unless noVersion
		key  string
		msg  string // substring of Msg
		str  string // if set, the whole Error()
	}{
		{"unknown key", "proxy: {remoteur: x}", "proxy.remoteur", MsgUnknownKey, `config: unknown key "proxy.remoteur"`},
		{"unknown top-level key", "loglevel: debug", "loglevel", MsgUnknownKey, ""},
		{"unknown deep key", "http: {tls: {certificates: x}}", "http.tls.certificates", MsgUnknownKey, ""},
		{"upper-case key", "Proxy: {}", "Proxy", MsgUnknownKey, ""},
		{"storage.tag", "storage: {tag: {concurrencylimit: 5}}", "storage.tag", msgUnsupported, ""},
		{"bad duration", "proxy: {ttl: 7days}", "proxy.ttl", "invalid duration", `config: proxy.ttl="7days": ` + msgDuration},
		{"duration as mapping", "proxy: {timeouts: {stall: {s: 1}}}", "proxy.timeouts.stall", "expected a duration", ""},
		{"negative ttl", "proxy: {ttl: -1h}", "proxy.ttl", "negative", ""},
		{"negative draintimeout", "http: {draintimeout: -1s}", "http.draintimeout", "negative", ""},
		{"negative stall", "proxy: {timeouts: {stall: -5s}}", "proxy.timeouts.stall", "negative", ""},
		{"version 0.2", "", "version", "unsupported version", ""},
		{"log level", "log: {level: verbose}", "log.level", "must be one of", `config: log.level="verbose": must be one of error, warn, info, debug`},
		{"logstash", "log: {formatter: logstash}", "log.formatter", "logstash formatter is not supported", ""},
		{"formatter", "log: {formatter: xml}", "log.formatter", "text or json", ""},
		{"log not a mapping", "log: [a]", "log", "expected a mapping", ""},
		{"swift driver", "storage: {swift: {container: b}}", "storage.swift", msgUnsupportedDriver, ""},
		{"inmemory driver", "storage: {inmemory: }", "storage.inmemory", msgUnsupportedDriver, ""},
		{"empty rootdirectory", "storage: {filesystem: {rootdirectory: ''}}", "storage.filesystem.rootdirectory", "empty", ""},
		{"negative maxthreads", "storage: {filesystem: {maxthreads: -1}}", "storage.filesystem.maxthreads", "negative", ""},
		{"bad bool", "storage: {delete: {enabled: maybe}}", "storage.delete.enabled", "expected true or false", ""},
		{"auth silly", "auth: {silly: {realm: r, service: s}}", "auth.silly", msgUnsupported, `config: auth.silly: ` + msgUnsupported},
		{"notifications", "notifications: {endpoints: [{name: a}]}", "notifications", msgUnsupported, ""},
		{"redis without s3", "redis: {addr: 'localhost:6379'}", "redis", "shared", ""},
		{"redis addrs without s3", "redis: {addrs: ['localhost:6379']}", "redis", "storage.s3", ""},
		{"middleware", "middleware: {registry: [{name: x}]}", "middleware", msgUnsupported, ""},
		{"letsencrypt", "http: {tls: {letsencrypt: {email: a@b}}}", "http.tls.letsencrypt", msgUnsupported, ""},
		{"proxy exec", "proxy: {exec: {command: x}}", "proxy.exec", msgUnsupported, ""},
		{"remoteurl scheme", "proxy: {remoteurl: 'ftp://mirror'}", "proxy.remoteurl", "http or https", `config: proxy.remoteurl="ftp://mirror": must be an http or https URL`},
		{"remoteurl relative", "proxy: {remoteurl: registry-1.docker.io}", "proxy.remoteurl", "http or https", ""},
		{"remoteurl no host", "proxy: {remoteurl: 'https://'}", "proxy.remoteurl", "host", ""},
		{"remoteurl user info", "proxy: {remoteurl: 'https://bob:" + secretPassword + "@mirror'}", "proxy.remoteurl", "user info", ""},
		{"remoteurl query", "proxy: {remoteurl: 'https://mirror/?a=b'}", "proxy.remoteurl", "query", ""},
		{"peerurl scheme", "proxy: {peerurl: 'tcp://10.0.0.5:5000'}", "proxy.peerurl", "http or https", `config: proxy.peerurl="tcp://10.0.0.5:5000": must be an http or https URL at which the other replicas reach this one`},
		{"peerurl bare address", "proxy: {peerurl: '10.0.0.5:5000'}", "proxy.peerurl", "http or https", ""},
		{"peerurl no host", "proxy: {peerurl: 'http://'}", "proxy.peerurl", "host", ""},
		{"addr without port", "http: {addr: '5000'}", "http.addr", "host:port", ""},
		{"addr bad port", "http: {addr: ':99999'}", "http.addr", "invalid port", ""},
		{"net", "http: {net: udp}", "http.net", "tcp or unix", ""},
		{"unix without path", "http: {net: unix, addr: ''}", "http.addr", "socket path", ""},
		{"debug addr", "http: {debug: {addr: nope}}", "http.debug.addr", "host:port", ""},
		{"host", "http: {host: 'mirror.example'}", "http.host", "http or https", ""},
		{"prefix", "http: {prefix: mirror}", "http.prefix", "start with", ""},
		{"headers scalar", "http: {headers: {X-A: b}}", "http.headers", "expected a mapping", ""},
		{"certificate without key", "http: {tls: {certificate: c.pem}}", "http.tls.key", "required", ""},
		{"key without certificate", "http: {tls: {key: k.pem}}", "http.tls.certificate", "required", ""},
		{"clientcas without tls", "http: {tls: {clientcas: [ca.pem]}}", "http.tls.clientcas", "requires", ""},
		{"minimumtls", "http: {tls: {certificate: c, key: k, minimumtls: tls1.4}}", "http.tls.minimumtls", "tls1.3", ""},
		{"cafile missing", "proxy: {cafile: /nonexistent/ca.pem}", "proxy.cafile", "cannot read CA file", ""},
		{"cafile not PEM", "proxy: {cafile: '" + notPEM + "'}", "proxy.cafile", "no PEM certificates", ""},
		{"retries too many", "proxy: {retries: 11}", "proxy.retries", "between 0 and 10", ""},
		{"retries negative", "proxy: {retries: -1}", "proxy.retries", "between 0 and 10", ""},
		{"retries not a number", "proxy: {retries: three}", "proxy.retries", "expected an integer", `config: proxy.retries="three": expected an integer`},
		{"username without password", "proxy: {username: alice}", "proxy.password", "required", ""},
		{"password without username", "proxy: {password: " + secretPassword + "}", "proxy.username", "required", ""},
		{"password not a string", "proxy: {username: a, password: [" + secretPassword + "]}", "proxy.password", "expected a string", ""},
		{"maxmanifestsize unit", "proxy: {maxmanifestsize: 4XB}", "proxy.maxmanifestsize", "invalid byte size", ""},
		{"maxmanifestsize negative", "proxy: {maxmanifestsize: -1}", "proxy.maxmanifestsize", "invalid byte size", ""},
		{"maxmanifestsize zero", "proxy: {maxmanifestsize: 0}", "proxy.maxmanifestsize", "positive", ""},
		{"maxmanifestsize overflow", "proxy: {maxmanifestsize: 99999999999TiB}", "proxy.maxmanifestsize", "too large", ""},
		{"authhosts URL", "proxy: {authhosts: ['https://auth.docker.io']}", "proxy.authhosts[0]", "host name", ""},
		{"authhosts list", "proxy: {authhosts: auth.docker.io}", "proxy.authhosts", "expected a list of strings", ""},
		{"duplicate key", "proxy: {ttl: 1h, ttl: 2h}", "proxy.ttl", "duplicate key", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "version: 0.1\n" + tt.yaml
			if tt.key == "version" {
				doc = "version: 0.2\n"
			}
			_, err := Parse([]byte(doc), nil)
			e := asConfigError(t, err)
			if e.Key != tt.key {
				t.Errorf("Key = %q, want %q (error: %v)", e.Key, tt.key, err)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", e.Msg, tt.msg)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q does not name %q", err, tt.key)
			}
			if tt.str != "" && err.Error() != tt.str {
				t.Errorf("Error() = %q, want %q", err, tt.str)
			}
			if strings.Contains(err.Error(), secretPassword) {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}
}

func TestDocumentErrors(t *testing.T) {
	tests := []struct{ name, yaml, msg string }{
		{"missing version", "proxy: {ttl: 1h}", `config: version: missing (must be "0.1")`},
		{"empty document", "", `config: version: missing (must be "0.1")`},
		{"not a mapping", "- a\n- b", "config: the configuration must be a YAML mapping"},
		{"invalid YAML", "version: 0.1\nproxy: [", "config: invalid YAML: "},
		{"two documents", "version: 0.1\n---\nversion: 0.1", "config: invalid YAML: only one document is allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			asConfigError(t, err)
			if !strings.HasPrefix(err.Error(), tt.msg) {
				t.Errorf("Error() = %q, want prefix %q", err, tt.msg)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	base := "version: 0.1\nproxy:\n  remoteurl: https://file.example\n  ttl: 2h\nlog:\n  fields: &f {a: 1}\nhealth: *f\n"
	tests := []struct {
		name    string
		environ []string
		check   func(*Config) bool
	}{
		{"remoteurl", []string{"REGISTRY_PROXY_REMOTEURL=https://ghcr.io"},
			func(c *Config) bool { return c.Proxy.RemoteURL == "https://ghcr.io" && c.Proxy.TTL == 2*time.Hour }},
		{"http.addr", []string{"REGISTRY_HTTP_ADDR=127.0.0.1:8080"}, func(c *Config) bool { return c.HTTP.Addr == "127.0.0.1:8080" }},
		{"delete enabled", []string{"REGISTRY_STORAGE_DELETE_ENABLED=true"}, func(c *Config) bool { return c.Storage.Delete.Enabled }},
		{"peerurl", []string{"REGISTRY_PROXY_PEERURL=http://10.0.0.5:5000/"},
			func(c *Config) bool { return c.Proxy.PeerURL == "http://10.0.0.5:5000" }},
		{"ttl", []string{"REGISTRY_PROXY_TTL=1h"}, func(c *Config) bool { return c.Proxy.TTL == time.Hour }},
		{"console off", []string{"REGISTRY_UI_DISABLED=true"}, func(c *Config) bool { return c.UI.Disabled }},
		{"ttl nanoseconds", []string{"REGISTRY_PROXY_TTL=1000"}, func(c *Config) bool { return c.Proxy.TTL == time.Microsecond }},
		{"stall", []string{"REGISTRY_PROXY_TIMEOUTS_STALL=5s"}, func(c *Config) bool { return c.Proxy.Timeouts.Stall == 5*time.Second }},
		{"rootdirectory", []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/srv/cache"},
			func(c *Config) bool { return c.Storage.Filesystem.RootDirectory == "/srv/cache" }},
		{"log level", []string{"REGISTRY_LOG_LEVEL=debug"}, func(c *Config) bool { return c.Log.Level == "debug" }},
		{"strings are verbatim", []string{"REGISTRY_PROXY_USERNAME=0x10", "REGISTRY_PROXY_PASSWORD=~"},
			func(c *Config) bool { return c.Proxy.Username == "0x10" && c.Proxy.Password == "~" }},
		{"list as YAML", []string{"REGISTRY_PROXY_AUTHHOSTS=[auth.example, token.example]"},
			func(c *Config) bool {
				return reflect.DeepEqual(c.Proxy.AuthHosts, []string{"auth.example", "token.example"})
			}},
		{"headers as YAML", []string{"REGISTRY_HTTP_HEADERS={X-Frame-Options: [DENY]}"},
			func(c *Config) bool { return c.HTTP.Headers["X-Frame-Options"][0] == "DENY" }},
		{"free-form section", []string{"REGISTRY_LOG_FIELDS_B=2"},
			func(c *Config) bool { return c.Log.Fields["b"] == 2 && c.Health["b"] == nil && c.Health["a"] == 1 }},
		{"section as YAML then key", []string{"REGISTRY_PROXY_TTL=3h", "REGISTRY_PROXY={remoteurl: 'https://x.example', ttl: 1h}"},
			func(c *Config) bool { return c.Proxy.RemoteURL == "https://x.example" && c.Proxy.TTL == 3*time.Hour }},
		{"later entry wins", []string{"REGISTRY_HTTP_ADDR=:1", "REGISTRY_HTTP_ADDR=:2"}, func(c *Config) bool { return c.HTTP.Addr == ":2" }},
		{"ignored variables", []string{"REGISTRY_CONFIGURATION_PATH=/etc/x.yml", "HOME=/root", "PATH", "registry_proxy_ttl=1",
			"REGISTRY_PORT=tcp://10.0.0.1:5000", "REGISTRY_PORT_5000_TCP_ADDR=10.0.0.1", "REGISTRY_SERVICE_HOST=10.0.0.1"},
			func(c *Config) bool { return c.Proxy.TTL == 2*time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, base, tt.environ...)
			if !tt.check(cfg) {
				t.Errorf("unexpected config: %+v", cfg)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		name, env, key, msg, str string
	}{
		{"unknown key", "REGISTRY_PROXY_REMOTEUR=x", "proxy.remoteur", MsgUnknownKey,
			`config: REGISTRY_PROXY_REMOTEUR: unknown key "proxy.remoteur"`},
		{"unknown section", "REGISTRY_FOO=x", "foo", MsgUnknownKey, ""},
		{"below a leaf", "REGISTRY_PROXY_TTL_X=1", "proxy.ttl.x", MsgUnknownKey, ""},
		{"empty segment", "REGISTRY_PROXY__TTL=1h", "proxy.", MsgUnknownKey, ""},
		{"bad duration", "REGISTRY_PROXY_TTL=7days", "proxy.ttl", "invalid duration",
			`config: REGISTRY_PROXY_TTL: proxy.ttl="7days": ` + msgDuration},
		{"bad bool", "REGISTRY_STORAGE_DELETE_ENABLED=maybe", "storage.delete.enabled", "expected true or false", ""},
		{"bad int", "REGISTRY_PROXY_RETRIES=many", "proxy.retries", "expected an integer", ""},
		{"validation", "REGISTRY_PROXY_RETRIES=11", "proxy.retries", "between", ""},
		{"validation of URL", "REGISTRY_PROXY_REMOTEURL=ftp://x", "proxy.remoteurl", "http or https", ""},
		{"auth", "REGISTRY_AUTH_ANONYMOUSPULL=maybe", "auth.anonymouspull", "true or false", ""},
		{"driver", "REGISTRY_STORAGE_OSS_BUCKET=b", "storage.oss", msgUnsupportedDriver, ""},
		{"header key", "REGISTRY_HTTP_HEADERS_X=y", "http.headers", "whole mapping", ""},
		{"bad YAML list", "REGISTRY_PROXY_AUTHHOSTS=[a", "proxy.authhosts", "invalid YAML", ""},
		{"section scalar", "REGISTRY_STORAGE=s3", "storage", "expected a mapping", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("version: 0.1\n"), []string{tt.env})
			e := asConfigError(t, err)
			name, _, _ := strings.Cut(tt.env, "=")
			if e.Env != name || e.Key != tt.key || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("got Env=%q Key=%q Msg=%q, want %q %q %q", e.Env, e.Key, e.Msg, name, tt.key, tt.msg)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
			if tt.str != "" && err.Error() != tt.str {
				t.Errorf("Error() = %q, want %q", err, tt.str)
			}
		})
	}
}

func TestEnvIntoNonMapping(t *testing.T) {
	_, err := Parse([]byte("version: 0.1\nproxy: x\n"), []string{"REGISTRY_PROXY_TTL=1h"})
	e := asConfigError(t, err)
	if e.Key != "proxy" || e.Env != "REGISTRY_PROXY_TTL" {
		t.Errorf("got %#v", e)
	}
}

func TestPasswordNeverInErrors(t *testing.T) {
	docs := []struct {
		yaml    string
		environ []string
	}{
		{"proxy: {password: " + secretPassword + "}", nil},
		{"proxy: {username: u, password: " + secretPassword + ", ttl: bad}", nil},
		{"proxy: {username: u, password: {x: " + secretPassword + "}}", nil},
		{"proxy: {remoteurl: 'https://u:" + secretPassword + "@h'}", nil},
		{"proxy: {remoteurl: 'u:" + secretPassword + "@h'}", nil},
		{"proxy: {remoteurl: 'http://u:" + secretPassword + "@h:bad'}", nil},
		{"proxy: {authhosts: ['u:" + secretPassword + "@h']}", nil},
		{"http: {secret: [" + secretPassword + "]}", nil},
		{"", []string{"REGISTRY_PROXY_PASSWORD=" + secretPassword}},
		{"", []string{"REGISTRY_PROXY_PASSWORD=" + secretPassword, "REGISTRY_PROXY_REMOTEUR=x"}},
		{"", []string{"REGISTRY_PROXY_REMOTEURL=https://u:" + secretPassword + "@h"}},
	}
	for _, d := range docs {
		_, err := Parse([]byte("version: 0.1\n"+d.yaml), d.environ)
		asConfigError(t, err)
		if strings.Contains(err.Error(), secretPassword) || strings.Contains(err.(*Error).Value, secretPassword) {
			t.Errorf("error %q reveals the password (input %q %v)", err, d.yaml, d.environ)
		}
	}
	for _, key := range []string{"proxy.password", "http.secret", "redis.password"} {
		e := &Error{Key: key, Value: secretPassword, Msg: "bad"}
		if want := "config: " + key + `="****": bad`; e.Error() != want {
			t.Errorf("Error() = %q, want %q", e, want)
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"4MiB", 4 << 20, true},
		{"512KiB", 512 << 10, true},
		{"1GB", 1e9, true},
		{"1048576", 1 << 20, true},
		{"2 gib", 2 << 30, true},
		{"10B", 10, true},
		{"4M", 0, false},
		{"1.5MiB", 0, false},
		{"", 0, false},
		{"MiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if s := ByteSize(4 << 20).String(); s != "4MiB" {
		t.Errorf("String() = %q", s)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(distributionProxyConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, []string{"REGISTRY_HTTP_ADDR=:6000"})
	if err != nil || cfg.HTTP.Addr != ":6000" {
		t.Fatalf("Load = %+v, %v", cfg, err)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.yml"), nil)
	asConfigError(t, err)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestRootCAs(t *testing.T) {
	if pool, err := (Proxy{}).RootCAs(); pool != nil || err != nil {
		t.Errorf("RootCAs() without cafile = %v, %v", pool, err)
	}
	pool, err := Proxy{CAFile: writeCAFile(t)}.RootCAs()
	if err != nil || pool == nil {
		t.Errorf("RootCAs() = %v, %v", pool, err)
	}
}

// writeCAFile writes a self-signed CA certificate and returns its path.
func writeCAFile(t *testing.T) string { return testpki.NewCA(t).PEMPath }
