package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestPin(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    []string
	}{
		{"unset", "", nil, nil},
		{"repositories and tags", `proxy:
  pin: [library/alpine, "library/*", "team/app:v1.*", "ghcr.io/owner/app", "localhost:5001/app:v[0-9]"]`, nil,
			[]string{"library/alpine", "library/*", "team/app:v1.*", "ghcr.io/owner/app", "localhost:5001/app:v[0-9]"}},
		{"from the environment", "", []string{`REGISTRY_PROXY_PIN=[library/alpine, "team/app:v1"]`},
			[]string{"library/alpine", "team/app:v1"}},
		{"one component without Docker Hub", "proxy: {remoteurl: 'https://registry.example', pin: [app, 'app:v1']}", nil,
			[]string{"app", "app:v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, "version: 0.1\n"+tt.yaml, tt.environ...)
			if !reflect.DeepEqual(cfg.Proxy.Pin, tt.want) {
				t.Errorf("proxy.pin = %q, want %q", cfg.Proxy.Pin, tt.want)
			}
		})
	}
}

func TestParsePin(t *testing.T) {
	tests := []struct {
		in, repo, tag string
	}{
		{"library/alpine", "library/alpine", ""},
		{"library/alpine:3.20", "library/alpine", "3.20"},
		{"localhost:5001/app", "localhost:5001/app", ""},
		{"localhost:5001/app:v1.*", "localhost:5001/app", "v1.*"},
		{"team/*:latest", "team/*", "latest"},
	}
	for _, tt := range tests {
		repo, tag, err := ParsePin(tt.in)
		if err != nil || repo != tt.repo || tag != tt.tag {
			t.Errorf("ParsePin(%q) = %q, %q, %v; want %q, %q", tt.in, repo, tag, err, tt.repo, tt.tag)
		}
	}
}

func TestPinErrors(t *testing.T) {
	tests := []struct {
		name, yaml, key, msg string
	}{
		{"not a list", "proxy: {pin: library/alpine}", "proxy.pin", "expected a list of strings"},
		{"empty", "proxy: {pin: ['']}", "proxy.pin[0]", "must not be empty"},
		{"bad repo pattern", "proxy: {pin: ['library/[alpine']}", "proxy.pin[0]", "path.Match"},
		{"bad tag pattern", "proxy: {pin: [library/alpine, 'library/alpine:v[1']}", "proxy.pin[1]", "path.Match"},
		{"empty tag", "proxy: {pin: ['library/alpine:']}", "proxy.pin[0]", "must not be empty"},
		{"tag characters", "proxy: {pin: ['library/alpine:v1+x']}", "proxy.pin[0]", "tag pattern may hold"},
		{"tag too long", "proxy: {pin: ['library/alpine:" + strings.Repeat("a", 129) + "']}", "proxy.pin[0]", "longer than"},
		{"upper case", "proxy: {pin: [Library/Alpine]}", "proxy.pin[0]", "lower-case"},
		{"digest", "proxy: {pin: ['library/alpine@sha256:abc']}", "proxy.pin[0]", "digests cannot be pinned"},
		{"empty component", "proxy: {pin: ['library//alpine']}", "proxy.pin[0]", "empty path component"},
		{"leading slash", "proxy: {pin: ['/library/alpine']}", "proxy.pin[0]", "empty path component"},
		{"docker hub short name", "proxy: {pin: [alpine]}", "proxy.pin[0]", "library/alpine"},
		{"docker hub short pattern", "proxy: {pin: ['*:latest']}", "proxy.pin[0]", "matches no Docker Hub repository"},
		{"from the environment", "", "proxy.pin[0]", "path.Match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var environ []string
			if tt.yaml == "" {
				environ = []string{"REGISTRY_PROXY_PIN=['library/[x']"}
			}
			_, err := Parse([]byte("version: 0.1\n"+tt.yaml), environ)
			e := asConfigError(t, err)
			if e.Key != tt.key || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q (key %q), want key %q and %q", err, e.Key, tt.key, tt.msg)
			}
		})
	}
}
