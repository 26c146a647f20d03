package azuretest

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// client is an Azure SDK client of the account, trusting the test CA.
func (s *Server) client(t testing.TB) *azblob.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(Account, AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	opts := &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: s.tls}},
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
	c, err := azblob.NewClientWithSharedKeyCredential(s.ServiceURL, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createContainer creates a container.
func (s *Server) createContainer(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.client(t).CreateContainer(ctx, name, nil); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
}

// Keys lists the blobs in the container that start with prefix, sorted,
// through the Blob API.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := strings.TrimPrefix(prefix, "/")
	pager := s.client(t).NewListBlobsFlatPager("cache", &container.ListBlobsFlatOptions{Prefix: &p})
	var keys []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		for _, b := range page.Segment.BlobItems {
			keys = append(keys, *b.Name)
		}
	}
	sort.Strings(keys)
	return keys
}

// Put writes a block blob directly, bypassing the proxy (to plant damage).
func (s *Server) Put(t testing.TB, key string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.client(t).UploadBuffer(ctx, "cache", strings.TrimPrefix(key, "/"), body, nil); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}
