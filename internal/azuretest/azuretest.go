// Package azuretest runs an Azure Blob Storage emulator for tests: Azurite's
// blob service (npm package azurite), on 127.0.0.1 only, with its telemetry
// off.
//
// Start skips the test when azurite-blob is not on PATH, unless
// AZURE_REQUIRE=1 is set: then a missing server fails the test.
package azuretest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"

	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/testpki"
	"github.com/ocimirror/proxy/internal/testproc"
)

// Install is how Azurite is installed (.ci/test puts node_modules/.bin on
// PATH).
const Install = "npm install azurite@3.37.0"

// Azurite's well-known development account and key (public, documented by
// Microsoft; Azurite accepts no other by default).
const (
	Account    = "devstoreaccount1"
	AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Server is a running Azurite with the container "cache"; it is an
// objtest.Backend.
type Server struct {
	// ServiceURL is the account's blob service URL,
	// http(s)://127.0.0.1:PORT/devstoreaccount1.
	ServiceURL string
	tls        *tls.Config // the client's, with https
}

// Start runs Azurite over http on a free loopback port with the container
// "cache", and stops it when the test ends.
func Start(t testing.TB) *Server { return start(t, false) }

// StartTLS is Start over https, with a certificate of the test's own CA: SAS
// URLs, which redirects answer with, say https, and Azurite refuses them
// over http. The driver is given skipverify.
func StartTLS(t testing.TB) *Server { return start(t, true) }

// Backend is Start as an objtest.Backend, for driver-agnostic tests.
func Backend(t testing.TB) objtest.Backend { return Start(t) }

// BackendTLS is StartTLS as an objtest.Backend.
func BackendTLS(t testing.TB) objtest.Backend { return StartTLS(t) }

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	dir := t.TempDir()
	var ca testpki.CA
	if useTLS {
		ca = testpki.NewCA(t)
	}
	bin := testproc.Find(t, "azurite-blob", "`"+Install+"`", "AZURE_REQUIRE")
	port := testproc.Start(t, bin, func(port int) []string {
		args := []string{"--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port), "--location", dir,
			"--skipApiVersionCheck", "--disableTelemetry", "--silent"}
		if useTLS {
			args = append(args, "--cert", ca.PEMPath, "--key", ca.KeyPEMPath)
		}
		return args
	})
	s := &Server{ServiceURL: fmt.Sprintf("http://127.0.0.1:%d/%s", port, Account)}
	if useTLS {
		s.ServiceURL = fmt.Sprintf("https://127.0.0.1:%d/%s", port, Account)
		s.tls = &tls.Config{RootCAs: ca.Pool()}
	}
	s.createContainer(t, "cache")
	return s
}

// Driver is "azure".
func (s *Server) Driver() string { return "azure" }

// Params returns the storage.azure parameters for the container "cache"
// under the key prefix root: the development account with its shared key.
func (s *Server) Params(root string) map[string]any {
	p := map[string]any{
		"accountname":   Account,
		"accountkey":    AccountKey,
		"container":     "cache",
		"serviceurl":    s.ServiceURL,
		"rootdirectory": root,
		"credentials":   map[string]any{"type": "shared_key"},
	}
	if s.tls != nil {
		p["skipverify"] = true
	}
	return p
}

// Secret is the account key.
func (s *Server) Secret() string { return AccountKey }

// BreakSecret replaces the account key in p by another valid-looking one.
func (s *Server) BreakSecret(p map[string]any) {
	p["accountkey"] = "AAAA" + AccountKey[4:]
}

// URL is the service URL: SAS URLs point below it.
func (s *Server) URL() string { return s.ServiceURL }

// Client fetches SAS URLs, trusting the test CA with https.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: s.tls}}
}

// Context returns ctx: the azure driver needs nothing more.
func (s *Server) Context(ctx context.Context) context.Context { return ctx }
