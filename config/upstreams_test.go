package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUpstreams(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, `version: 0.1
proxy:
  ttl: 2h
upstreams:
  - host: GHCR.io
  - host: localhost:5001
    remoteurl: http://127.0.0.1:5001/
    username: bot
    passwordfile: `+pwFile+`
    ttl: 10m
`)
	if len(cfg.Upstreams) != 2 {
		t.Fatalf("upstreams: %+v", cfg.Upstreams)
	}
	g, l := cfg.Upstreams[0], cfg.Upstreams[1]
	if g.Host != "ghcr.io" || g.RemoteURL != "https://ghcr.io" || g.TTL != 2*time.Hour {
		t.Errorf("defaults: %+v", g)
	}
	if l.RemoteURL != "http://127.0.0.1:5001" || l.Password != "from-file" || l.TTL != 10*time.Minute {
		t.Errorf("explicit: %+v", l)
	}
	if hosts := cfg.Proxy.DefaultHosts(); len(hosts) != 3 || hosts[0] != "docker.io" {
		t.Errorf("Docker Hub aliases: %v", hosts)
	}
}

func TestUpstreamErrors(t *testing.T) {
	tests := []struct {
		name, yaml, key string
	}{
		{"unknown key in an entry", "upstreams:\n  - host: ghcr.io\n    remoteur: https://x", "upstreams[0].remoteur"},
		{"no host", "upstreams:\n  - remoteurl: https://x.example", "upstreams[0].host"},
		{"not a registry host", "upstreams:\n  - host: ghcr", "upstreams[0].host"},
		{"duplicate", "upstreams:\n  - host: ghcr.io\n  - host: ghcr.io", "upstreams[1].host"},
		{"docker hub twice", "upstreams:\n  - host: docker.io", "upstreams[0].host"},
		{"bad url", "upstreams:\n  - host: a.example\n    remoteurl: ftp://a.example", "upstreams[0].remoteurl"},
		{"username alone", "upstreams:\n  - host: a.example\n    username: u", "upstreams[0].password"},
		{"both passwords", "upstreams:\n  - host: a.example\n    username: u\n    password: p\n    passwordfile: /x", "upstreams[0].passwordfile"},
		{"missing password file", "upstreams:\n  - host: a.example\n    username: u\n    passwordfile: /nonexistent/pw", "upstreams[0].passwordfile"},
		{"password env unset", "upstreams:\n  - host: a.example\n    username: u\n    passwordenv: NOT_SET_ANYWHERE", "upstreams[0].passwordenv"},
		{"password and env", "upstreams:\n  - host: a.example\n    username: u\n    password: p\n    passwordenv: X", "upstreams[0].passwordenv"},
		{"missing CA", "upstreams:\n  - host: a.example\n    ca: /nonexistent/ca.pem", "upstreams[0].ca"},
		{"not a list", "upstreams:\n  host: a.example", "upstreams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("version: 0.1\n"+tt.yaml), nil)
			e := asConfigError(t, err)
			if e.Key != tt.key || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("error %q (key %q), want key %q", err, e.Key, tt.key)
			}
		})
	}
}

func TestUpstreamPasswordEnv(t *testing.T) {
	cfg, err := Parse([]byte("version: 0.1\nupstreams:\n  - host: a.example\n    username: robot\n    passwordenv: QUAY_TOKEN\n"),
		[]string{"OTHER=x", "QUAY_TOKEN=s3cret=with=equals"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Upstreams[0].Password; got != "s3cret=with=equals" {
		t.Errorf("password %q", got)
	}
}

func TestMaxSize(t *testing.T) {
	cfg := mustParse(t, "version: 0.1\nstorage:\n  delete:\n    enabled: true\nproxy:\n  maxsize: 50GiB")
	if cfg.Proxy.MaxSize != 50<<30 {
		t.Fatalf("maxsize %d", cfg.Proxy.MaxSize)
	}
	_, err := Parse([]byte("version: 0.1\nproxy:\n  maxsize: 1GiB"), nil)
	if e := asConfigError(t, err); e.Key != "proxy.maxsize" || !strings.Contains(err.Error(), "storage.delete.enabled") {
		t.Fatalf("maxsize without delete: %v", err)
	}
}
