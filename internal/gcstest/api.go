package gcstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// call sends a JSON API request to the emulator and decodes its JSON answer
// into out (when not nil).
func (s *Server) call(t testing.TB, method, path string, body []byte, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.Endpoint+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// createBucket creates a bucket.
func (s *Server) createBucket(t testing.TB, name string) {
	t.Helper()
	s.call(t, http.MethodPost, "/storage/v1/b?project=ocimirror-test", fmt.Appendf(nil, `{"name":%q}`, name), nil)
}

// Keys lists the keys in the bucket that start with prefix, sorted, through
// the JSON API.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	for token := ""; ; {
		var page struct {
			Items []struct {
				Name string `json:"name"`
			} `json:"items"`
			NextPageToken string `json:"nextPageToken"`
		}
		q := url.Values{"prefix": {strings.TrimPrefix(prefix, "/")}, "pageToken": {token}}
		s.call(t, http.MethodGet, "/storage/v1/b/cache/o?"+q.Encode(), nil, &page)
		for _, it := range page.Items {
			keys = append(keys, it.Name)
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	sort.Strings(keys)
	return keys
}

// Put writes an object directly, bypassing the proxy (to plant damage).
func (s *Server) Put(t testing.TB, key string, body []byte) {
	t.Helper()
	q := url.Values{"uploadType": {"media"}, "name": {strings.TrimPrefix(key, "/")}}
	s.call(t, http.MethodPost, "/upload/storage/v1/b/cache/o?"+q.Encode(), body, nil)
}
