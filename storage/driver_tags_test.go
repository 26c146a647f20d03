//go:build nogcs && noazure

package storage

import (
	"context"
	"strings"
	"testing"
)

// TestWithoutDrivers: a binary built with -tags nogcs,noazure says so when
// configured for them, before any network access.
func TestWithoutDrivers(t *testing.T) {
	for _, name := range []string{"gcs", "azure"} {
		_, err := OpenDriver(context.Background(), name, map[string]any{"bucket": "b", "container": "c", "accountname": "a"})
		if err == nil || !strings.Contains(err.Error(), "built without the "+name+" driver (-tags no"+name+")") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
