// Package gcstest runs a GCS emulator for tests: fake-gcs-server, in memory,
// on 127.0.0.1 only. Distribution's gcs driver reaches it through
// STORAGE_EMULATOR_HOST, which Google's storage client honours, except for
// one path (see Context).
//
// Start skips the test when fake-gcs-server is not on PATH, unless
// GCS_REQUIRE=1 is set: then a missing server fails the test.
package gcstest

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"golang.org/x/oauth2"

	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/testproc"
)

// Install is how fake-gcs-server is installed; .ci/test runs it.
const Install = "go install github.com/fsouza/fake-gcs-server@v1.56.1"

// Server is a running fake-gcs-server with the bucket "cache"; it is an
// objtest.Backend.
type Server struct {
	// Endpoint is its URL, http://127.0.0.1:PORT.
	Endpoint string
	key      serviceAccount
}

// Start runs fake-gcs-server on a free loopback port with the bucket "cache",
// points STORAGE_EMULATOR_HOST at it for the rest of the test (so the test
// cannot be parallel) and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testproc.Find(t, "fake-gcs-server", "`"+Install+"`", "GCS_REQUIRE")
	port := testproc.Start(t, bin, func(port int) []string {
		return []string{"-scheme", "http", "-host", "127.0.0.1", "-port", fmt.Sprint(port),
			"-public-host", fmt.Sprintf("127.0.0.1:%d", port), "-backend", "memory", "-log-level", "error"}
	})
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), key: newServiceAccount(t)}
	t.Setenv("STORAGE_EMULATOR_HOST", s.Endpoint)
	s.createBucket(t, "cache")
	return s
}

// Backend is Start as an objtest.Backend, for driver-agnostic tests.
func Backend(t testing.TB) objtest.Backend { return Start(t) }

// Driver is "gcs".
func (s *Server) Driver() string { return "gcs" }

// Params returns the storage.gcs parameters for the bucket under the key
// prefix root, with a service account key of the test's own (the emulator
// checks no credentials, but the driver needs a key to sign URLs).
func (s *Server) Params(root string) map[string]any {
	return map[string]any{
		"bucket":        "cache",
		"rootdirectory": root,
		"credentials":   s.key.params(),
	}
}

// Secret is a line of the service account's private key.
func (s *Server) Secret() string { return s.key.secretLine() }

// URL is the emulator's URL.
func (s *Server) URL() string { return s.Endpoint }

// Client fetches the driver's signed URLs. They say https (distribution's
// driver never asks for http ones) and the emulator speaks http, so the
// client sends https requests for the emulator's host over http (and any
// other request as it is).
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: rewrite{to: s.Endpoint}}
}

// Context returns ctx with the HTTP client distribution's gcs driver takes
// from it (golang.org/x/oauth2's context key) for its resumable uploads of
// blobs larger than chunksize. The driver sends those to
// https://www.googleapis.com whatever STORAGE_EMULATOR_HOST says, and takes
// an OAuth token first; this client sends the first to the emulator and
// answers the second itself, and refuses every other host, so nothing leaves
// the machine.
func (s *Server) Context(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: googleAPIs{emulator: s.Endpoint}})
}
