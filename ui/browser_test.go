//go:build browser

// The console's browser test: the built proxy binary, distribution's registry
// as the remote and the default upstream, and headless Chromium driven by
// playwright-core (ui/e2e/console.mjs). Run with
//
//	(cd ui/e2e && npm install) && go test -tags browser -run TestConsoleInBrowser ./ui/
//
// .ci/test installs chromium (apt) and playwright-core (npm) and runs it.
// Screenshots go to $CONSOLE_SCREENSHOTS, else ui/testdata/out (gitignored).
package ui_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/ocimirror/proxy/internal/syncbuf"
	"github.com/ocimirror/proxy/internal/testregistry"
)

const (
	adminUser = "admin"
	adminPass = "console-test-pw"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestConsoleInBrowser: log in, create a pull mirror with Save & Apply and see
// its tags arrive and its job done, create a push mirror with a rule, push,
// see its job, and see the test's pulls on the dashboard.
func TestConsoleInBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is required: ", err)
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium is required (apt-get install chromium): %v", err)
	}
	if _, err := os.Stat("e2e/node_modules/playwright-core"); err != nil {
		t.Fatalf("playwright-core is required (cd ui/e2e && npm install): %v", err)
	}
	out := os.Getenv("CONSOLE_SCREENSHOTS")
	if out == "" {
		out, _ = filepath.Abs("testdata/out")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "proxy")
	if b, err := exec.Command("go", "build", "-o", bin, "../cmd/proxy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	remoteReg := testregistry.Start(t)
	remoteReg.PushRandom(t, "team/app:v1", 2048, 2)
	remoteReg.PushRandom(t, "team/app:v2", 2048, 2)
	remoteReg.PushRandom(t, "library/busybox:latest", 4096, 2)

	hash, _ := bcrypt.GenerateFromPassword([]byte(adminPass), bcrypt.MinCost)
	htpasswd := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswd, fmt.Sprintf("%s:%s\n", adminUser, hash))
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "config.yml")
	writeFile(t, cfgPath, fmt.Sprintf(`version: 0.1
http:
  addr: %s
  secret: browser-test-secret
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
auth:
  htpasswd:
    realm: test
    path: %s
hosted:
  namespaces: [dev]
proxy:
  remoteurl: %s
  maxsize: 1GiB
`, addr, filepath.Join(dir, "data"), htpasswd, remoteReg.URL))

	var logs syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	waitFor(t, 20*time.Second, func() error {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	// Pulls through the cache, for the dashboard.
	for _, ref := range []string{"library/busybox:latest", "library/busybox:latest", "team/app:v1"} {
		r, err := name.ParseReference(addr+"/"+ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r)
		if err != nil {
			t.Fatalf("pull %s through the proxy: %v", ref, err)
		}
		if _, err := img.Layers(); err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		for _, l := range ls {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			_, _ = new(bytes.Buffer).ReadFrom(rc)
			rc.Close()
		}
	}

	runNode := func(phase string) {
		t.Helper()
		var nodeOut syncbuf.Buffer
		nctx, ncancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer ncancel()
		c := exec.CommandContext(nctx, node, "e2e/console.mjs")
		c.Env = append(os.Environ(), "CONSOLE_URL="+base+"/ui/", "REMOTE_URL="+remoteReg.URL, "CHROMIUM="+chromium,
			"CONSOLE_USER="+adminUser, "CONSOLE_PASSWORD="+adminPass, "SCREENSHOTS="+out, "PHASE="+phase)
		c.Stdout, c.Stderr = &nodeOut, &nodeOut
		err := c.Run()
		t.Logf("console.mjs %s:\n%s", phase, nodeOut.String())
		if err != nil {
			t.Fatalf("console.mjs %s: %v", phase, err)
		}
	}
	runNode("mirrors")

	// Push a tag the push mirror's rule selects, and one it does not.
	auth := authn.FromConfig(authn.AuthConfig{Username: adminUser, Password: adminPass})
	for _, tag := range []string{"release-1", "scratch"} {
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := name.ParseReference(addr+"/dev/app:"+tag, name.Insecure)
		if err := remote.Write(r, img, remote.WithAuth(auth)); err != nil {
			t.Fatalf("push %s: %v", tag, err)
		}
	}
	runNode("push")

	// The push mirror pushed the selected tag to the remote, not the other.
	waitFor(t, 30*time.Second, func() error {
		_, err := remote.Head(remoteReg.Ref(t, "pushed/app:release-1"))
		return err
	})
	if _, err := remote.Head(remoteReg.Ref(t, "pushed/app:scratch")); err == nil {
		t.Error("the push mirror pushed a tag its rule does not select")
	}
	if bytes.Contains([]byte(logs.String()), []byte(adminPass)) {
		t.Error("the admin password is in the proxy's log")
	}
	t.Logf("screenshots in %s", out)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor retries ready until it succeeds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
