package config

import (
	"os"
	"strings"
	"testing"
)

// TestExampleStorageSections: each commented storage section of
// config.example.yml (s3, gcs, azure) parses once uncommented, as the only
// storage driver of a configuration, and names the driver it documents.
func TestExampleStorageSections(t *testing.T) {
	data, err := os.ReadFile("../config.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	blocks := commentedBlocks(string(data), "storage:")
	var drivers []string
	for _, block := range blocks {
		doc := "version: 0.1\n" + block
		if !strings.Contains(block, "\nproxy:\n") {
			doc += "proxy: {statedirectory: /var/lib/proxy}\n"
		}
		cfg, err := Parse([]byte(doc), nil)
		if err != nil {
			t.Errorf("%v in the section\n%s", err, block)
			continue
		}
		drivers = append(drivers, cfg.Storage.Driver())
	}
	if strings.Join(drivers, " ") != "s3 gcs azure" {
		t.Errorf("documented drivers %v, want s3, gcs and azure", drivers)
	}
}

// commentedBlocks returns the commented-out YAML blocks of doc whose first
// line is "# "+first, uncommented: the lines from there to the next line
// that is not a comment.
func commentedBlocks(doc, first string) []string {
	var blocks []string
	var cur *strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		switch {
		case line == "# "+first:
			cur = &strings.Builder{}
			blocks = append(blocks, "")
		case cur == nil:
			continue
		case !strings.HasPrefix(line, "#"):
			blocks[len(blocks)-1], cur = cur.String(), nil
			continue
		}
		cur.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ") + "\n")
	}
	if cur != nil {
		blocks[len(blocks)-1] = cur.String()
	}
	return blocks
}

// TestExampleCluster: the S3 section of config.example.yml with its redis
// section, uncommented, configure a replica of a cluster that streams fills
// from its peers: peerurl, the shared http.secret and Redis, as shown.
func TestExampleCluster(t *testing.T) {
	data, err := os.ReadFile("../config.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	storage, redis := commentedBlocks(string(data), "storage:"), commentedBlocks(string(data), "redis:")
	if len(storage) == 0 || len(redis) != 1 {
		t.Fatalf("%d storage and %d redis sections in config.example.yml", len(storage), len(redis))
	}
	doc := "version: 0.1\n" + storage[0]
	for i, line := range strings.Split(redis[0], "\n") {
		if i > 0 && !strings.HasPrefix(line, "  ") { // the prose after the section
			break
		}
		doc += line + "\n"
	}
	cfg, err := Parse([]byte(doc), nil)
	if err != nil {
		t.Fatalf("%v in\n%s", err, doc)
	}
	if cfg.Proxy.PeerURL != "http://10.0.0.5:5000" || cfg.HTTP.Secret == "" || !cfg.Redis.Enabled() || cfg.Storage.Driver() != DriverS3 {
		t.Errorf("peerurl %q, secret set %v, redis %v, driver %v", cfg.Proxy.PeerURL, cfg.HTTP.Secret != "", cfg.Redis.Enabled(), cfg.Storage.Driver())
	}
}
