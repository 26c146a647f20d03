package storage

import (
	"errors"
	"strings"
	"testing"
)

// TestRedact: every driver's credentials are replaced, a PEM key whole, line
// by line and JSON-escaped.
func TestRedact(t *testing.T) {
	err := redact(errors.New("bad key s3cr3t in request"), map[string]any{"secretkey": "s3cr3t"})
	if err.Error() != "bad key **** in request" {
		t.Fatalf("redact = %q", err)
	}
	pemKey := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"
	params := map[string]any{
		"accountkey":  "QWNjb3VudEtleQ==",
		"credentials": map[any]any{"secret": "client-s3cret", "private_key": pemKey},
	}
	for _, msg := range []string{
		"auth failed for QWNjb3VudEtleQ==",
		"token: client-s3cret rejected",
		"parse " + pemKey,
		"json {\"private_key\": \"" + strings.ReplaceAll(pemKey, "\n", `\n`) + "\"}",
		"line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC of the key",
	} {
		got := redact(errors.New(msg), params).Error()
		for _, s := range []string{"QWNjb3VudEtleQ==", "client-s3cret", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"} {
			if strings.Contains(got, s) {
				t.Errorf("redact(%q) = %q keeps %q", msg, got, s)
			}
		}
	}
	if err := errors.New("nothing secret"); redact(err, params) != err {
		t.Error("an error without secrets was replaced")
	}
}

// TestDriverParams: gcs credentials become the map[any]any its driver takes;
// the caller's parameters are left as they were.
func TestDriverParams(t *testing.T) {
	creds := map[string]any{"type": "service_account"}
	in := map[string]any{"bucket": "b", "credentials": creds}
	out := DriverParams("gcs", in)
	if m, ok := out["credentials"].(map[any]any); !ok || m["type"] != "service_account" {
		t.Fatalf("gcs credentials = %#v", out["credentials"])
	}
	if _, ok := in["credentials"].(map[string]any); !ok {
		t.Fatal("DriverParams changed its argument")
	}
	if az := DriverParams("azure", in); az["credentials"].(map[string]any)["type"] != "service_account" {
		t.Fatal("azure parameters were changed")
	}
}
