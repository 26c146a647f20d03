package config

import (
	"strings"
	"testing"
)

// driverErrorCase replaces replace by with in a valid document and expects
// an error about key whose message contains msg.
type driverErrorCase struct {
	name, replace, with, key, msg string
}

// testDriverErrors runs the cases on base; no error may reveal the secret.
func testDriverErrors(t *testing.T, base string, tests []driverErrorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(base, tt.replace, tt.with, 1)
			if doc == base {
				t.Fatalf("%q not in the base document", tt.replace)
			}
			_, err := Parse([]byte(doc), nil)
			e := asConfigError(t, err)
			if e.Key != tt.key || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("got %v, want key %q and %q", err, tt.key, tt.msg)
			}
			if strings.Contains(err.Error(), secretPassword) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}
