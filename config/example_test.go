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
