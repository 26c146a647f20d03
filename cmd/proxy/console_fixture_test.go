package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// Console test credentials: an admin of the htpasswd file the fixture writes.
const (
	consoleAdmin = "admin"
	consolePass  = "console-pw"
)

// serveFixture is serve's whole handler (newHandler) on an httptest server,
// with its index and store at hand.
type serveFixture struct {
	URL    string
	Cfg    *config.Config
	Index  *scheduler.Index
	Store  *storage.Store
	client *http.Client
}

// startServe runs newHandler on a config of the default upstream remote and
// the YAML sections extra, which may use {{htpasswd}} for the path of a file
// that holds consoleAdmin.
func startServe(t *testing.T, remote, extra string) *serveFixture {
	t.Helper()
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte(consolePass), bcrypt.MinCost)
	ht := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(ht, []byte(consoleAdmin+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf("version: 0.1\nhttp: {secret: fixture}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\n"+
		"proxy: {remoteurl: %s, ttl: 24h, retries: 0}\n%s", filepath.Join(dir, "data"), remote, strings.ReplaceAll(extra, "{{htpasswd}}", ht))
	cfg, err := config.Parse([]byte(doc), nil)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, doc)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ix, err := openIndex(cfg, logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ix.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	store, err := openStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, _, stop, err := newHandler(ctx, cfg, ix, store, logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); cancel(); stop() })
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &serveFixture{URL: srv.URL, Cfg: cfg, Index: ix, Store: store, client: client}
}

// get sends a GET and returns the status, headers and body.
func (f *serveFixture) get(t *testing.T, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := f.client.Get(f.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// login logs in to the console as consoleAdmin.
func (f *serveFixture) login(t *testing.T) {
	t.Helper()
	resp, err := f.client.PostForm(f.URL+"/ui/login", url.Values{"username": {consoleAdmin}, "password": {consolePass}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("console login: %d", resp.StatusCode)
	}
}
