package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// commentedYAML matches a commented-out line of YAML in config.example.yml
// (a key, a list item or an indented line), not a line of prose.
var commentedYAML = regexp.MustCompile(`^# ( *[a-z0-9_]+:( |$)|  +\S)`)

// TestExampleClusterUncommented: the commented object storage, cluster and
// peer streaming blocks at the end of config.example.yml load when
// uncommented, with the values shown.
func TestExampleClusterUncommented(t *testing.T) {
	b, err := os.ReadFile("../config.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	_, tail, ok := strings.Cut(string(b), "# Object storage instead")
	if !ok {
		t.Fatal("config.example.yml has no object storage block")
	}
	doc := []string{"version: 0.1"}
	for _, line := range strings.Split(tail, "\n") {
		if commentedYAML.MatchString(line) {
			doc = append(doc, strings.TrimPrefix(line, "# "))
		}
	}
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(strings.Join(doc, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatalf("the uncommented blocks do not load: %v\n%s", err, strings.Join(doc, "\n"))
	}
	if cfg.Proxy.PeerURL != "http://10.0.0.5:5000" || cfg.HTTP.Secret == "" || !cfg.Redis.Enabled() || cfg.Storage.Driver() != DriverS3 {
		t.Fatalf("peerurl %q, secret set %v, redis %v, driver %v", cfg.Proxy.PeerURL, cfg.HTTP.Secret != "", cfg.Redis.Enabled(), cfg.Storage.Driver())
	}
}
