package proxy

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/upstream"
)

// TestPrivateUpstreamTLS: an upstream with a private CA works with the CA file,
// fails without it, and works with the explicit skip-verify switch.
func TestPrivateUpstreamTLS(t *testing.T) {
	content := []byte("tls blob")
	d := digest.FromBytes(content)
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/app/blobs/"+d.String() {
			_, _ = w.Write(content)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(up.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts []upstream.Option
		want int
	}{
		{"no CA", nil, http.StatusBadGateway},
		{"CA file", []upstream.Option{upstream.WithCAFile(caFile)}, http.StatusOK},
		{"skip verify", []upstream.Option{upstream.WithInsecureSkipVerify(true)}, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := startMirror(t, up.URL, tc.opts...)
			code, _, body := get(t, "GET", m.URL+"/v2/app/blobs/"+d.String(), nil)
			if code != tc.want {
				t.Fatalf("status %d (%s), want %d", code, body, tc.want)
			}
			if code == 200 && string(body) != string(content) {
				t.Fatalf("body %q", body)
			}
		})
	}
}
