package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuthAndHosted(t *testing.T) {
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("alice:$2y$05$abcdefghijklmnopqrstuv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "version: 0.1\n"
	cases := []struct {
		name, yaml, wantErr string
		check               func(*Config) bool
	}{
		{"none", "", "", func(c *Config) bool { return !c.Auth.Enabled() && c.Auth.Anonymous() }},
		{"htpasswd", "auth:\n  htpasswd:\n    realm: r\n    path: " + htpasswd + "\n", "",
			func(c *Config) bool {
				return c.Auth.Enabled() && c.Auth.Anonymous() && c.Auth.Htpasswd.Path == htpasswd
			}},
		{"no anonymous", "auth:\n  anonymouspull: false\n  htpasswd:\n    realm: r\n    path: " + htpasswd + "\n", "",
			func(c *Config) bool { return !c.Auth.Anonymous() }},
		{"missing file", "auth:\n  htpasswd:\n    realm: r\n    path: /nonexistent\n", "auth.htpasswd.path", nil},
		{"no realm", "auth:\n  htpasswd:\n    path: " + htpasswd + "\n", "auth.htpasswd.realm", nil},
		{"both", "auth:\n  htpasswd: {realm: r, path: " + htpasswd + "}\n  token: {realm: 'https://a', service: s, issuer: i, rootcertbundle: x}\n", "not both", nil},
		{"token fields", "auth:\n  token: {realm: 'https://a', issuer: i, rootcertbundle: x}\n", "auth.token.service", nil},
		{"admins alone", "auth:\n  admins: [bob]\n", "auth.admins", nil},
		{"hosted", "hosted:\n  namespaces: [dev, qa]\n", "", func(c *Config) bool {
			return c.Hosted.IsHosted("dev/app") && c.Hosted.IsHosted("qa") && !c.Hosted.IsHosted("devx/app") && !c.Hosted.IsHosted("library/dev")
		}},
		{"hosted host", "hosted:\n  namespaces: [ghcr.io]\n", "registry host", nil},
		{"hosted bad", "hosted:\n  namespaces: [Dev]\n", "path component", nil},
		{"hosted twice", "hosted:\n  namespaces: [dev, dev]\n", "twice", nil},
		{"upstream public default", "upstreams:\n  - host: a.io\n    username: u\n    password: p\n  - host: b.io\n", "",
			func(c *Config) bool { return !c.Upstreams[0].IsPublic() && c.Upstreams[1].IsPublic() }},
		{"upstream public set", "upstreams:\n  - host: a.io\n    username: u\n    password: p\n    public: true\n", "",
			func(c *Config) bool { return c.Upstreams[0].IsPublic() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(base+tc.yaml), nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Errorf("unexpected config: %+v %+v", cfg.Auth, cfg.Hosted)
			}
		})
	}
}
