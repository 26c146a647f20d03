package gcstest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

// serviceAccount is a service account key made for the test: the driver
// signs redirect URLs with it.
type serviceAccount struct {
	email  string
	keyPEM string
}

// newServiceAccount makes an RSA key (2048 bits, as Google's are).
func newServiceAccount(t testing.TB) serviceAccount {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return serviceAccount{
		email:  "proxy@ocimirror-test.iam.gserviceaccount.com",
		keyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
}

// params is the key as storage.gcs.credentials, the fields of a JSON key
// file. token_uri is Google's: Context answers it.
func (a serviceAccount) params() map[string]any {
	return map[string]any{
		"type":           "service_account",
		"project_id":     "ocimirror-test",
		"private_key_id": "0123456789abcdef",
		"private_key":    a.keyPEM,
		"client_email":   a.email,
		"client_id":      "1",
		"token_uri":      "https://oauth2.googleapis.com/token",
	}
}

// secretLine is the first line of the key's body: no output may hold it.
func (a serviceAccount) secretLine() string {
	return strings.Split(a.keyPEM, "\n")[1]
}
