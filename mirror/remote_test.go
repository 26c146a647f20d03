package mirror

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ocimirror/proxy/internal/testpki"
	"github.com/ocimirror/proxy/internal/testregistry"
)

func TestPing(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithTokenAuth("alice", "s3cret"))
	c := NewCopier()
	e := endpoint(t, reg.Host, "team/app")
	e.Auth = &authn.Basic{Username: "alice", Password: "s3cret"}
	if err := c.Ping(context.Background(), e); err != nil {
		t.Errorf("ping with good credentials: %v", err)
	}

	e.Auth = &authn.Basic{Username: "alice", Password: "wrong-password"}
	err := c.Ping(context.Background(), e)
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
		t.Errorf("ping with a bad password: %v, want the registry's 401", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("the error shows the password: %v", err)
	}
	t.Logf("bad password: %v", err)

	e.Auth = nil
	err = c.Ping(context.Background(), e)
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous ping of a registry that wants credentials: %v, want its 401", err)
	}
	t.Logf("anonymous: %v", err)

	reg.Stop()
	if err := c.Ping(context.Background(), e); err == nil {
		t.Error("ping of a stopped registry succeeded")
	} else {
		t.Logf("stopped: %v", err)
	}
}

// TestTagsAndHead lists tags and resolves them with HEADs only, sharing one
// token among calls with the same credentials.
func TestTagsAndHead(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithTokenAuth("alice", "s3cret"))
	want := map[string]string{}
	for _, tag := range []string{"v1", "v2", "latest"} {
		img := reg.PushRandom(t, "team/app:"+tag, 512, 1)
		want[tag] = digestOf(t, img).String()
	}
	c := NewCopier()
	e := endpoint(t, reg.Host, "team/app")
	e.Auth = &authn.Basic{Username: "alice", Password: "s3cret"}
	tokens, gets := reg.Count(http.MethodGet, "token"), reg.Count(http.MethodGet, "manifests")

	tags, err := c.Tags(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if !slices.Equal(tags, []string{"latest", "v1", "v2"}) {
		t.Errorf("tags %v", tags)
	}
	for _, tag := range tags {
		d, err := c.Head(context.Background(), e, tag)
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest.String() != want[tag] {
			t.Errorf("%s is %s, want %s", tag, d.Digest, want[tag])
		}
	}
	if n := reg.Count(http.MethodGet, "manifests") - gets; n != 0 {
		t.Errorf("%d manifest GETs: Head must not download", n)
	}
	if n := reg.Count(http.MethodGet, "token") - tokens; n != 1 {
		t.Errorf("%d token requests for a listing and 3 HEADs, want 1", n)
	}
	if _, err := c.Head(context.Background(), e, "nope"); !isNotFound(err) {
		t.Errorf("head of a missing tag: %v, want a 404", err)
	}
	if _, err := c.Tags(context.Background(), endpoint(t, reg.Host, "team/none")); err == nil {
		t.Error("anonymous listing of a registry that wants credentials succeeded")
	}
}

// TestEndpointPrintsNoCredentials: an Endpoint printed any way shows its
// repository and no password.
func TestEndpointPrintsNoCredentials(t *testing.T) {
	e := endpoint(t, "127.0.0.1:5000", "team/app")
	e.Auth = &authn.Basic{Username: "alice", Password: "s3cret"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(f, e)
		if strings.Contains(s, "s3cret") || !strings.Contains(s, "team/app") {
			t.Errorf("%s of an Endpoint: %s", f, s)
		}
		s = fmt.Sprintf(f, &e)
		if strings.Contains(s, "s3cret") {
			t.Errorf("%s of an *Endpoint: %s", f, s)
		}
	}
}

func TestIsReferrersTag(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	for tag, want := range map[string]bool{
		"sha256-" + hex:                  true,
		"sha256-" + hex + ".sig":         false, // cosign's: an image of its own
		"sha256-" + hex[:63]:             false,
		"sha256-" + strings.ToUpper(hex): false,
		"sha512-" + hex:                  false,
		"latest":                         false,
	} {
		if got := IsReferrersTag(tag); got != want {
			t.Errorf("IsReferrersTag(%q) = %t", tag, got)
		}
	}
}

// TestEndpointTLS reaches a registry behind a certificate of a private CA:
// with the CA (PEM) a copy works, without it the TLS error is what Ping says,
// and SkipTLSVerify accepts it anyway.
func TestEndpointTLS(t *testing.T) {
	reg, dst := testregistry.Start(t), testregistry.Start(t)
	reg.PushRandom(t, "team/app:v1", 512, 1)
	ca := testpki.NewCA(t)
	u, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(u))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Cert}, MinVersion: tls.VersionTLS12}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	pem, err := os.ReadFile(ca.PEMPath)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	c := NewCopier(quickRetries)

	err = c.Ping(context.Background(), Endpoint{Repo: repo})
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Errorf("ping without the CA: %v, want an unknown authority error", err)
	}
	if err := c.Ping(context.Background(), Endpoint{Repo: repo, SkipTLSVerify: true}); err != nil {
		t.Errorf("ping skipping verification: %v", err)
	}
	if err := c.Ping(context.Background(), Endpoint{Repo: repo, CA: []byte("not a certificate")}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("ping with a CA that is no PEM: %v", err)
	}
	src := Endpoint{Repo: repo, CA: pem}
	if err := c.Ping(context.Background(), src); err != nil {
		t.Fatalf("ping with the CA: %v", err)
	}
	if _, err := c.Copy(context.Background(), src, "v1", endpoint(t, dst.Host, "team/app"), "", nil); err != nil {
		t.Errorf("copy from behind the CA: %v", err)
	}
}
