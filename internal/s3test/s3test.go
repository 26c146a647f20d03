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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"
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

// Server is a running versitygw.
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
// bucket, and stops it when the test ends. It skips the test when versitygw is
// not installed, unless S3_REQUIRE=1.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		msg := "versitygw is not on PATH (install it with `" + Install + "`)"
		if os.Getenv("S3_REQUIRE") == "1" {
			t.Fatal(msg + "; S3_REQUIRE=1 makes the S3 tests mandatory")
		}
		t.Skip(msg + "; skipping the S3 test (S3_REQUIRE=1 makes this a failure)")
	}
	var last error
	for range 3 { // the free port may be taken between probing and versitygw's bind
		s, err := start(t, bin)
		if err == nil {
			s.CreateBucket(t, "cache")
			s.Bucket = "cache"
			return s
		}
		last = err
	}
	t.Fatalf("versitygw did not start: %v", last)
	return nil
}

func start(t testing.TB, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var out bytes.Buffer
	cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--port", addr, "--quiet", "posix", dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("versitygw (pid %d) did not exit 10s after SIGKILL", cmd.Process.Pid)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			stop()
			return nil, fmt.Errorf("versitygw exited (%v): %s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("versitygw not listening on %s after 15s: %s", addr, out.String())
		}
	}
	t.Cleanup(stop)
	s := &Server{Endpoint: "http://" + addr, Dir: dir}
	sess, err := session.NewSession(aws.NewConfig().
		WithCredentials(credentials.NewStaticCredentials(AccessKey, SecretKey, "")).
		WithEndpoint(s.Endpoint).WithRegion(Region).WithS3ForcePathStyle(true).WithDisableSSL(true))
	if err != nil {
		return nil, err
	}
	s.client = s3.New(sess)
	return s, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// CreateBucket creates another bucket.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucketWithContext(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

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

// YAML returns the same parameters as a storage.s3 section body, indented by
// indent, for configuration files.
func (s *Server) YAML(root, indent string) string {
	var b strings.Builder
	p := s.Params(root)
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s%s: %#v\n", indent, k, p[k])
	}
	return b.String()
}

// ProxyStorage returns the storage section of a proxy configuration on the
// bucket under root, for configuration files of tests: the s3 parameters,
// delete enabled, and redirects off (hits are streamed by the proxy itself).
func (s *Server) ProxyStorage(root string) string {
	return "storage:\n  s3:\n" + s.YAML(root, "    ") + "  delete: {enabled: true}\n  redirect: {disable: true}\n"
}

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

// BlobKey is the key of a blob's data under root, in distribution's layout.
func BlobKey(root, dgst string) string {
	alg, hex, _ := strings.Cut(dgst, ":")
	return strings.TrimPrefix(filepath.ToSlash(filepath.Join(root, "docker/registry/v2/blobs", alg, hex[:2], hex, "data")), "/")
}
