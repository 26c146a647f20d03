// Package objtest is what the tests' object storage emulators share
// (versitygw for s3 in s3test, fake-gcs-server in gcstest, Azurite in
// azuretest): the Backend interface that driver-agnostic tests run against,
// and the layout helpers.
package objtest

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Backend is an emulator running for one test, with one bucket (or
// container) named "cache".
type Backend interface {
	// Driver is the storage section's key of its driver: "s3", "gcs", "azure".
	Driver() string
	// Params are the driver's parameters for the bucket under the key prefix
	// root ("" for the bucket's top).
	Params(root string) map[string]any
	// Keys lists the keys in the bucket that start with prefix, sorted,
	// through the emulator's own API.
	Keys(t testing.TB, prefix string) []string
	// Put writes an object directly, bypassing the proxy (to plant damage).
	Put(t testing.TB, key string, body []byte)
	// Secret is a credential in Params that no error, log line or redirect
	// URL may contain.
	Secret() string
	// URL is the emulator's base URL, where redirect URLs point.
	URL() string
	// Client fetches the redirect URLs the driver makes.
	Client() *http.Client
	// Context returns ctx with what the driver needs to reach the emulator
	// (see gcstest); drivers are opened with it.
	Context(ctx context.Context) context.Context
}

// Authenticating is a Backend whose emulator checks credentials.
type Authenticating interface {
	// BreakSecret changes the secret in p so that the emulator refuses it.
	BreakSecret(p map[string]any)
}

// BucketParam is the parameter naming the bucket of driver: "container" for
// azure, "bucket" for the others.
func BucketParam(driver string) string {
	if driver == "azure" {
		return "container"
	}
	return "bucket"
}

// BlobKey is the key of a blob's data under root, in distribution's layout.
func BlobKey(root, dgst string) string {
	alg, hex, _ := strings.Cut(dgst, ":")
	return strings.TrimPrefix(path.Join(root, "docker/registry/v2/blobs", alg, hex[:2], hex, "data"), "/")
}

// YAML returns b's parameters for root as the body of a storage.<driver>
// section, each line indented by indent, for configuration files.
func YAML(t testing.TB, b Backend, root, indent string) string {
	t.Helper()
	out, err := yaml.Marshal(b.Params(root))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(out), "\n"), "\n")
	return indent + strings.Join(lines, indent) + "\n"
}

// ProxyStorage returns the storage section of a proxy configuration on b
// under root, for configuration files of tests: the driver's parameters,
// delete enabled, and redirects off (hits are streamed by the proxy itself).
func ProxyStorage(t testing.TB, b Backend, root string) string {
	t.Helper()
	return "storage:\n  " + b.Driver() + ":\n" + YAML(t, b, root, "    ") +
		"  delete: {enabled: true}\n  redirect: {disable: true}\n"
}

// Starter starts an emulator for a test.
type Starter func(testing.TB) Backend

// Case is a test of a driver-agnostic suite.
type Case struct {
	Name string
	// Redirect asks for a backend whose redirect URLs a client can fetch.
	Redirect bool
	// Run is the test, on b, under the key prefix root.
	Run func(t *testing.T, b Backend, root string)
}

// Run runs each case as a subtest under the key prefix "/<its name in lower
// case>", all on one backend that start starts, except the cases marked
// Redirect when startRedirect is not nil: those run on one that it starts
// (Azurite over https, for example).
func Run(t *testing.T, start, startRedirect Starter, cases []Case) {
	t.Helper()
	b, rb := start(t), Backend(nil)
	for _, c := range cases {
		if c.Redirect && startRedirect != nil && rb == nil {
			rb = startRedirect(t)
		}
	}
	for _, c := range cases {
		on := b
		if c.Redirect && rb != nil {
			on = rb
		}
		t.Run(c.Name, func(t *testing.T) { c.Run(t, on, "/"+strings.ToLower(c.Name)) })
	}
}

// PointsAt reports whether the URL u points at b's host (whatever the
// scheme: gcs signed URLs say https to an http emulator).
func PointsAt(u string, b Backend) bool {
	pu, err1 := url.Parse(u)
	pb, err2 := url.Parse(b.URL())
	return err1 == nil && err2 == nil && pu.Host == pb.Host
}
