// Package s3test runs a real S3 server for tests: versitygw with its posix
// backend in a temp dir, listening on 127.0.0.1 only.
//
// Tests that need it call Start, which skips the test (saying how to install
// versitygw) when versitygw is not on PATH, unless S3_REQUIRE=1 is set: then a
// missing server fails the test, so that CI cannot pass by skipping.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"

	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/testproc"
)

// Install is how versitygw is installed; .ci/test runs it.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Test credentials of the server's root user. The secret is distinctive so
// that tests can check it never appears in logs or errors.
const (
	AccessKey = "ocimirrortest"
	SecretKey = "s3test-Secret-K3y-never-logged"
	Region    = "us-east-1"
)

// Server is a running versitygw; it is an objtest.Backend.
type Server struct {
	// Endpoint is its URL, http://127.0.0.1:PORT.
	Endpoint string
	// Bucket is the bucket Start created.
	Bucket string
	// Dir is the posix backend's directory: one subdirectory per bucket.
	Dir    string
	client *s3.S3
}

// Start runs versitygw on a free loopback port with a fresh directory and one
// bucket, "cache", and stops it when the test ends. It skips the test when
// versitygw is not installed, unless S3_REQUIRE=1.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	bin := testproc.Find(t, "versitygw", "`"+Install+"`", "S3_REQUIRE")
	port := testproc.Start(t, bin, func(port int) []string {
		return []string{"--access", AccessKey, "--secret", SecretKey, "--region", Region,
			"--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet", "posix", dir}
	})
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir}
	sess, err := session.NewSession(aws.NewConfig().
		WithCredentials(credentials.NewStaticCredentials(AccessKey, SecretKey, "")).
		WithEndpoint(s.Endpoint).WithRegion(Region).WithS3ForcePathStyle(true).WithDisableSSL(true))
	if err != nil {
		t.Fatal(err)
	}
	s.client = s3.New(sess)
	s.CreateBucket(t, "cache")
	s.Bucket = "cache"
	return s
}

// Backend is Start as an objtest.Backend, for driver-agnostic tests.
func Backend(t testing.TB) objtest.Backend { return Start(t) }

// CreateBucket creates another bucket.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucketWithContext(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// Driver is "s3".
func (s *Server) Driver() string { return "s3" }

// Params returns the storage.s3 parameters of distribution's s3-aws driver for
// the bucket, under the key prefix root ("" for the bucket's top).
func (s *Server) Params(root string) map[string]any {
	return map[string]any{
		"bucket":         s.Bucket,
		"region":         Region,
		"regionendpoint": s.Endpoint,
		"accesskey":      AccessKey,
		"secretkey":      SecretKey,
		"forcepathstyle": true,
		"secure":         false,
		"v4auth":         true,
		"rootdirectory":  root,
	}
}

// Secret is the secret key.
func (s *Server) Secret() string { return SecretKey }

// BreakSecret replaces the secret key in p by a wrong one.
func (s *Server) BreakSecret(p map[string]any) { p["secretkey"] = "wrong-" + SecretKey }

// URL is the endpoint: presigned URLs point there.
func (s *Server) URL() string { return s.Endpoint }

// Client fetches presigned URLs.
func (s *Server) Client() *http.Client { return &http.Client{Transport: &http.Transport{}} }

// Context returns ctx: the s3 driver needs nothing more.
func (s *Server) Context(ctx context.Context) context.Context { return ctx }

// Keys lists the keys in the bucket that start with prefix, sorted, through
// the S3 API.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	err := s.client.ListObjectsV2PagesWithContext(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.Bucket), Prefix: aws.String(strings.TrimPrefix(prefix, "/")),
	}, func(p *s3.ListObjectsV2Output, _ bool) bool {
		for _, o := range p.Contents {
			keys = append(keys, *o.Key)
		}
		return true
	})
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	sort.Strings(keys)
	return keys
}

// Put writes an object directly, bypassing the proxy (to plant damage).
func (s *Server) Put(t testing.TB, key string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.client.PutObjectWithContext(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(strings.TrimPrefix(key, "/")), Body: bytes.NewReader(body),
	})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}
