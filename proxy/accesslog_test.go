package proxy

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// TestAccessLogNamesUpstream: the access log line says which upstream served a
// name and, for containerd's mirror requests, the ns= it asked for, so an
// operator (and the e2e suite) can see how a request was routed.
func TestAccessLogNamesUpstream(t *testing.T) {
	a, b := testregistry.Start(t), testregistry.Start(t)
	a.PushRandom(t, "app:v1", 100, 1)
	b.PushRandom(t, "app:v1", 100, 1)
	const hostB = "registry-b.test"
	store, err := storage.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	newCache := func(url string, opts ...cache.Option) *cache.Cache {
		up, err := upstream.New(url)
		if err != nil {
			t.Fatal(err)
		}
		c := cache.New(store, up, opts...)
		t.Cleanup(c.Close)
		return c
	}
	logs := &lockedBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	h := New(newCache(a.URL), WithLogger(logrus.NewEntry(log)),
		WithUpstreams(map[string]*cache.Cache{hostB: newCache(b.URL, cache.WithNamespace(hostB))}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		path string
		want []string // fields of the request's log line
		not  string   // a field it must not have
	}{
		{"/v2/app/manifests/v1?ns=" + hostB, []string{"ns=" + hostB, "upstream=\"" + b.Host + "\"", "status=200"}, ""},
		{"/v2/" + hostB + "/app/manifests/v1", []string{"upstream=\"" + b.Host + "\"", "status=200"}, "ns="},
		{"/v2/app/manifests/v1", []string{"upstream=\"" + a.Host + "\"", "status=200"}, "ns="},
		{"/v2/app/manifests/v1?ns=evil.example", []string{"ns=evil.example", "status=404"}, "upstream="},
	} {
		logs.Reset()
		code, _, _ := get(t, "GET", srv.URL+tc.path, nil)
		line := logs.waitLine(t)
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s (%d): log line lacks %s:\n%s", tc.path, code, w, line)
			}
		}
		if tc.not != "" && strings.Contains(line, tc.not) {
			t.Errorf("%s: log line has %s:\n%s", tc.path, tc.not, line)
		}
	}
}

// lockedBuffer collects log output written by the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// waitLine returns the output once it holds a whole line: the access log is
// written after the response, so it may trail the client by a moment.
func (b *lockedBuffer) waitLine(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b.mu.Lock()
		s := b.buf.String()
		b.mu.Unlock()
		if strings.HasSuffix(s, "\n") {
			return s
		}
	}
	t.Fatal("no access log line within 5s")
	return ""
}
