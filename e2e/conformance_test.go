//go:build e2e

package e2e

// The OCI distribution-spec conformance suite against the mirror: in its
// read-only (pull) mode, with the content pushed to the upstream first, pulled
// through the mirror with a cold cache, a warm cache, and the upstream stopped;
// and whole, with its writes sent to the upstream and its reads to the mirror.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ocimirror/proxy/internal/testregistry"
)

// conformanceModule is the suite's module at the version .ci/test builds
// (keep the two in step). It is a main package since its redesign; the older
// `go test -c` form with OCI_TEST_PULL is gone from the module proxy.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"

var (
	conformanceOnce sync.Once
	conformancePath string
	conformanceErr  error
)

// conformanceBinary returns the suite's binary: $OCI_CONFORMANCE_BIN when set
// (.ci/test builds it there), else one built now from the Go module proxy. A
// dev box that can do neither skips (CI fails: E2E_REQUIRE_CLIENTS).
func conformanceBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OCI_CONFORMANCE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("OCI_CONFORMANCE_BIN: %v", err)
		}
		return p
	}
	conformanceOnce.Do(func() {
		dir := filepath.Join(buildDir(t), "conformance-bin")
		out, err := runErr(5*time.Minute, []string{"GOBIN=" + dir}, "go", "install", conformanceModule)
		if err != nil {
			conformanceErr = fmt.Errorf("go install %s: %v\n%s", conformanceModule, err, out)
			return
		}
		conformancePath = filepath.Join(dir, "conformance")
	})
	if conformanceErr != nil {
		missing(t, "no conformance binary (set OCI_CONFORMANCE_BIN or allow the Go module proxy): %v", conformanceErr)
	}
	return conformancePath
}

// conformanceResult is one run of the suite, as its report counts it.
type conformanceResult struct {
	Passed, Failed, Skipped int
	Failures                []string // "test name: error" of each failed test
}

// runConformance runs the conformance suite against the registry at
// registryURL (http:// or https://) with the suite's OCI_* settings in env, and
// returns how many tests passed and failed (failures and errors) and the
// suite's output. Whether failures fail the test is the caller's call.
func runConformance(t *testing.T, registryURL string, env map[string]string) (passed, failed int, output string) {
	t.Helper()
	res, out := runConformanceResult(t, registryURL, env)
	return res.Passed, res.Failed, out
}

// runConformanceResult is runConformance with the failed tests' names.
func runConformanceResult(t *testing.T, registryURL string, env map[string]string) (conformanceResult, string) {
	t.Helper()
	bin := conformanceBinary(t)
	u, err := url.Parse(registryURL)
	if err != nil || u.Host == "" {
		t.Fatalf("registry URL %q: %v", registryURL, err)
	}
	dir := t.TempDir()
	vars := map[string]string{
		"OCI_REGISTRY":      u.Host,
		"OCI_TLS":           map[bool]string{true: "disabled", false: "enabled"}[u.Scheme == "http"],
		"OCI_RESULTS_DIR":   filepath.Join(dir, "results"),
		"OCI_CONFIGURATION": filepath.Join(dir, "oci-conformance.yaml"), // ours, not a stray one
		"OCI_LOG":           "warn",
	}
	for k, v := range env {
		vars[k] = v
	}
	writeFile(t, vars["OCI_CONFIGURATION"], "{}\n")
	var envList []string
	for k, v := range vars {
		envList = append(envList, k+"="+v)
	}
	// The suite exits 1 when a test failed; the report says which.
	out, runErr := runIn(dir, 5*time.Minute, envList, bin)
	res, ok := parseConformance(out)
	if !ok {
		t.Fatalf("conformance suite (%v) printed no result:\n%s", runErr, out)
	}
	if strings.Contains(out, "panic: ") {
		// In pull-only mode the suite crashes writing results.yaml, after its
		// report (run.go ReportResultsYAML: the skipped blob-push tests have a
		// status but no data). The report above is complete.
		t.Logf("the conformance suite panicked after printing its report (a known bug of its pull-only mode)")
	}
	return res, out
}

var (
	countLine = regexp.MustCompile(`^\s+(Pass|FAIL|Error|Skip|Disabled)\.+:\s+(\d+)$`)
	treeLine  = regexp.MustCompile(`^\s*(OCI Conformance Test.*): (\w+)$`)
)

// parseConformance reads the counts and the failed tests from the suite's
// report ("Test results", a tree of "name: status" lines with " - error"
// under failed leaves, then "OCI Conformance Result" and the counts).
func parseConformance(out string) (conformanceResult, bool) {
	var r conformanceResult
	seen := false
	last, lastStatus := "", ""
	for _, line := range strings.Split(out, "\n") {
		if m := treeLine.FindStringSubmatch(line); m != nil {
			last, lastStatus = m[1], m[2]
			continue
		}
		if msg, ok := strings.CutPrefix(strings.TrimSpace(line), "- "); ok && (lastStatus == "FAIL" || lastStatus == "Error") {
			r.Failures = append(r.Failures, last+": "+msg)
			continue
		}
		if strings.HasPrefix(line, "OCI Conformance Result:") {
			seen = true
			continue
		}
		m := countLine.FindStringSubmatch(line)
		if !seen || m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		switch m[1] {
		case "Pass":
			r.Passed = n
		case "FAIL", "Error":
			r.Failed += n
		default:
			r.Skipped += n
		}
	}
	return r, seen
}

// roContent is what the read-only run pulls: repo1's tags, manifests, blobs.
type roContent struct {
	tags, manifests, blobs []string
}

// env returns the suite's settings for a pull-only run of this content: no
// push, no delete, and no referrers API (distribution's registry, the
// upstream, has none, and the mirror passes its 404 through).
func (c roContent) env(repo string) map[string]string {
	return map[string]string{
		"OCI_REPO1":                repo,
		"OCI_REPO2":                repo,
		"OCI_API_PUSH":             "false",
		"OCI_API_BLOBS_DELETE":     "false",
		"OCI_API_MANIFESTS_DELETE": "false",
		"OCI_API_TAGS_DELETE":      "false",
		"OCI_API_REFERRER":         "false",
		"OCI_RO_DATA_TAGS":         strings.Join(c.tags, " "),
		"OCI_RO_DATA_MANIFESTS":    strings.Join(c.manifests, " "),
		"OCI_RO_DATA_BLOBS":        strings.Join(c.blobs, " "),
	}
}

// seedConformance pushes to repo on reg an OCI image (tag "image"), a
// two-platform OCI index (tag "index") and, by digest only, an image with
// Docker media types, and lists their content. The suite asks for manifests
// with OCI types only, and the mirror answers a tag whose manifest the Accept
// header excludes with 404 (as distribution does for OCI types), so the
// Docker image has no tag here.
func seedConformance(t *testing.T, reg *testregistry.Registry, repo string) roContent {
	t.Helper()
	var c roContent
	img := platformImage(t, "linux", "amd64", types.OCIManifestSchema1, 2<<10, 1<<20)
	reg.Push(t, repo+":image", img)
	c.addImage(t, img)

	idx, amd, arm := multiArch(t, 4<<10, 64<<10)
	reg.PushIndex(t, repo+":index", idx)
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	c.manifests = append(c.manifests, d.String())
	c.addImage(t, amd)
	c.addImage(t, arm)

	docker := platformImage(t, "linux", "amd64", types.DockerManifestSchema2, 1<<10, 300<<10)
	d, err = docker.Digest()
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, repo+"@"+d.String(), docker)
	c.addImage(t, docker)
	c.tags = []string{"image", "index"}
	return c
}

func (c *roContent) addImage(t *testing.T, img v1.Image) {
	t.Helper()
	w := wantImage(t, img)
	c.manifests = append(c.manifests, w.manifest.String())
	c.blobs = append(c.blobs, w.config.String())
	for _, l := range w.layers {
		c.blobs = append(c.blobs, l.String())
	}
}

// TestConformancePullOnly runs the suite three times against the mirror:
// with a cold cache (every pull goes upstream), with a warm one (no blob is
// fetched upstream again), and with the upstream stopped. Stopped, all cached
// content and the cached tag list are still served; only the suite's two
// requests for manifests that exist nowhere fail: the mirror cannot tell
// "missing" from "not cached" without its upstream and answers 502, not 404.
// The counts are logged for the record.
func TestConformancePullOnly(t *testing.T) {
	u := startUpstreams(t)
	const repo = "conformance/repo1"
	content := seedConformance(t, u.A, repo)
	m := startMirror(t, u)
	url := "http://" + m.Addr

	var cold conformanceResult
	var coldBlobGETs int64
	for _, run := range []struct {
		name         string
		before       func()
		expectFailed []string // tests that must fail, by name; any other failure fails the test
	}{
		{name: "cold cache", before: func() {}},
		{name: "warm cache", before: func() {}},
		{name: "upstream stopped", before: u.A.Stop, expectFailed: []string{
			"OCI Conformance Test/missing-manifest/by-digest",
			"OCI Conformance Test/missing-manifest/by-tag",
		}},
	} {
		run.before()
		res, out := runConformanceResult(t, url, content.env(repo))
		t.Logf("conformance, pull only, %s: %d passed, %d failed, %d skipped or disabled",
			run.name, res.Passed, res.Failed, res.Skipped)
		for _, f := range res.Failures {
			t.Logf("  failed: %s", f)
		}
		if got := failedNames(res); !equalSets(got, run.expectFailed) {
			t.Errorf("%s: failed tests %v, want %v:\n%s", run.name, got, run.expectFailed, out)
		}
		switch run.name {
		case "cold cache":
			cold, coldBlobGETs = res, u.A.Count("GET", "blobs")
			if cold.Passed == 0 || coldBlobGETs == 0 {
				t.Fatalf("cold run: %d passed, %d upstream blob GETs:\n%s", cold.Passed, coldBlobGETs, out)
			}
		case "warm cache":
			if n := u.A.Count("GET", "blobs") - coldBlobGETs; n != 0 {
				t.Errorf("warm run fetched %d blobs upstream again", n)
			}
		}
		if want := cold.Passed - len(run.expectFailed); res.Passed != want {
			t.Errorf("%s: %d passed, want %d (the cold run's %d less the expected failures)", run.name, res.Passed, want, cold.Passed)
		}
	}
}

// failedNames returns the names of the failed tests, each once.
func failedNames(r conformanceResult) []string {
	var names []string
	for _, f := range r.Failures {
		name, _, _ := strings.Cut(f, ": ")
		if !contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !contains(b, x) {
			return false
		}
	}
	return true
}

// TestConformancePushUpstreamPullThrough runs the whole suite (push, pull, tag
// list, blob uploads, mounts, range requests, every data type) with a small
// front that sends its writes to the upstream and its reads to the mirror: the
// suite pushes content upstream and at once reads it back through the mirror,
// cold, checking bodies, lengths, types and digests, which the read-only mode
// cannot (it does not know the content). Left out, each for a reason that is
// not the mirror's: deletes (the mirror keeps serving content by digest after
// the upstream deleted it: a cache, not the registry of record; with deletes
// on, 111 checks fail, each a HEAD after a delete that still finds the
// content), referrers (distribution
// has no referrers API), sha512 and non-distributable layers (distribution
// v3.1.2 fails those checks on its own, without the mirror).
func TestConformancePushUpstreamPullThrough(t *testing.T) {
	u := startUpstreams(t)
	m := startMirror(t, u)
	front, reads := writeThrough(t, u.A.URL, "http://"+m.Addr)

	res, out := runConformanceResult(t, front, map[string]string{
		"OCI_REPO1":                 "conformance/repo1",
		"OCI_REPO2":                 "conformance/repo2",
		"OCI_API_BLOBS_DELETE":      "false",
		"OCI_API_MANIFESTS_DELETE":  "false",
		"OCI_API_TAGS_DELETE":       "false",
		"OCI_API_REFERRER":          "false",
		"OCI_DATA_SHA512":           "false",
		"OCI_DATA_NONDISTRIBUTABLE": "false",
	})
	t.Logf("conformance, pushed upstream and pulled through the mirror: %d passed, %d failed, %d skipped or disabled",
		res.Passed, res.Failed, res.Skipped)
	for _, f := range res.Failures {
		t.Logf("  failed: %s", f)
	}
	if res.Failed > 0 || res.Passed == 0 {
		t.Errorf("%d passed, %d failed:\n%s", res.Passed, res.Failed, out)
	}
	if n := len(m.requestLines("/v2/conformance/repo1/")); n == 0 || reads.Load() == 0 {
		t.Errorf("the suite's reads did not reach the mirror (%d forwarded, %d logged)", reads.Load(), n)
	}
}

// writeThrough serves a registry whose writes (and upload sessions) go to
// writes and whose reads (GET and HEAD) go to reads, and returns its URL and
// the count of reads it forwarded.
func writeThrough(t *testing.T, writes, reads string) (string, *atomic.Int64) {
	t.Helper()
	proxyTo := func(raw string) *httputil.ReverseProxy {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return httputil.NewSingleHostReverseProxy(u)
	}
	toWrites, toReads := proxyTo(writes), proxyTo(reads)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		if read && !strings.Contains(r.URL.Path, "/blobs/uploads/") {
			n.Add(1)
			toReads.ServeHTTP(w, r)
			return
		}
		toWrites.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}
