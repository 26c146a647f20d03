package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/mirror"
)

// evil is a value a registry or a user could send; every page must show it
// as text.
const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// fakeCatalog serves fixed repositories whose names, tags and media types
// carry markup.
type fakeCatalog struct{}

func (fakeCatalog) Repositories(context.Context) ([]Repo, error) {
	return []Repo{
		{Name: "dev/app", Source: "hosted", Hosted: true, Tags: 1},
		{Name: "library/" + evil, Source: "registry-1.docker.io", Tags: 1, LastPull: time.Now().Add(-time.Minute)},
	}, nil
}

func (fakeCatalog) Repo(_ context.Context, name string) (RepoDetail, error) {
	if name != "dev/app" && name != "library/"+evil {
		return RepoDetail{}, ErrNotFound
	}
	return RepoDetail{Repo: Repo{Name: name, Source: "hosted", Hosted: name == "dev/app"}, TagList: []Tag{{
		Name: "v1" + evil, Digest: "sha256:" + strings.Repeat("a", 64), MediaType: evil, Size: 1234,
		Platforms: []string{"linux/amd64", evil}, LastPull: time.Now(), Expires: time.Now().Add(time.Hour), Error: evil,
	}}}, nil
}

// fakeAPI answers the mirroring API's calls with values that carry markup
// and records what it was asked.
type fakeAPI struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.RequestURI())
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/connect"):
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "REMOTE_CONNECT_FAILED",
			"message": "connecting to the remote registry failed: connect to h: UNAUTHORIZED " + evil}}})
	case strings.HasSuffix(p, "MirroringPolicies/p1") && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(mirror.Policy{ID: "p1", RemoteHost: "https://r.example", RemoteRepository: evil,
			Username: evil, Password: "********", RemoteCA: evil, TagTemplate: evil, Enabled: true,
			Rules: []mirror.Rule{{Field: "tag", Operator: "equals", Values: []string{evil}}}})
	case strings.HasSuffix(p, "MirroringPolicies") && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode([]mirror.Policy{{ID: "p1", RemoteHost: "https://r.example", RemoteRepository: evil,
			TagTemplate: evil, Enabled: true, Rules: []mirror.Rule{{Field: "tag", Operator: "equals", Values: []string{evil}}},
			LastStatus: &mirror.PolicyStatus{Code: "FAILED", Detail: evil}}})
	case strings.HasSuffix(p, "MirroringPolicies") && r.Method == http.MethodPost:
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "INVALID_INPUT",
			"message": `remoteRepository "` + evil + `": invalid reference format`}}})
	case p == "/api/v0/jobs" && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(map[string]any{"jobs": []mirror.Job{{ID: "j1", Action: mirror.ActionPoll,
			Status: mirror.StatusRunning, LastUpdated: time.Now(), Parameters: map[string]string{"tag": evil}, Error: evil}}})
	case p == "/api/v0/jobs" && r.Method == http.MethodPost:
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"id":"j2"}`)
	case p == "/api/v0/jobs/j1":
		_ = json.NewEncoder(w).Encode(mirror.Job{ID: "j1", Action: mirror.ActionPoll, Status: mirror.StatusRunning})
	case p == "/api/v0/jobs/j1/logs":
		_ = json.NewEncoder(w).Encode([]mirror.LogLine{{Time: time.Now(), Line: "copied tag " + evil}})
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}`)
	}
}

// htpasswd writes users whose password is their name with "-pw".
func htpasswd(t *testing.T, users ...string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		h, _ := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type harness struct {
	srv    *httptest.Server
	api    *fakeAPI
	client *http.Client
	logs   *strings.Builder
	mu     *sync.Mutex
}

// newHarness serves a console with htpasswd users alice (admin) and bob,
// over the fake catalog and API.
func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, config.Auth{Htpasswd: &config.Htpasswd{Realm: "test", Path: htpasswd(t, "alice", "bob")},
		Admins: []string{"alice"}}, "")
}

// newHarnessWith serves a console with the client auth cfg and the session
// secret (http.secret; "" for a random one).
func newHarnessWith(t *testing.T, cfg config.Auth, secret string) *harness {
	t.Helper()
	return newHarnessOver(t, cfg, secret, nil)
}

// newHarnessOver is newHarnessWith over the mirroring API that apiOf builds
// with the console's Authorizer; nil: the fake API, which h.api records.
func newHarnessOver(t *testing.T, cfg config.Auth, secret string, apiOf func(*auth.Authorizer) http.Handler) *harness {
	t.Helper()
	var logs strings.Builder
	var mu sync.Mutex
	l := logrus.New()
	l.SetOutput(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) }))
	log := logrus.NewEntry(l)
	authz, err := auth.New(cfg, auth.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	api := &fakeAPI{}
	var handler http.Handler = api
	if apiOf != nil {
		api, handler = nil, apiOf(authz)
	}
	c, err := New(Options{Auth: authz, Catalog: fakeCatalog{}, API: handler, Log: log, MaxSize: 1 << 30, Secret: secret,
		Stats: StatsFunc(func() Stats { return Stats{CacheSize: 1 << 20, Hits: 3, Misses: 1} }),
		Upstreams: func() []Upstream {
			return []Upstream{
				{Host: "registry-1.docker.io", LastSuccess: time.Now(), QuotaRemaining: 42, QuotaLimit: 100, QuotaWindow: 6 * time.Hour, QuotaAt: time.Now()},
				{Host: evil, LastError: "GET /v2/: 502 Bad Gateway: " + evil, LastErrorAt: time.Now(), ConsecutiveFailures: 3, QuotaRemaining: 1, QuotaLimit: 100, QuotaAt: time.Now()}, // its quota bar's label carries the host
			}
		},
		TopPulls: func(window time.Duration, n int) []RepoPulls {
			if window > time.Hour {
				return []RepoPulls{{Name: "library/" + evil, Pulls: 12, Over: 2}, {Name: "dev/app", Pulls: 1}}
			}
			return []RepoPulls{{Name: "library/" + evil, Pulls: 5}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &harness{srv: srv, api: api, client: client, logs: &logs, mu: &mu}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (h *harness) logText() string { h.mu.Lock(); defer h.mu.Unlock(); return h.logs.String() }

// do sends a request and returns status, headers and body.
func (h *harness) do(t *testing.T, method, path string, form url.Values, hdr ...string) (int, http.Header, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// login logs in as user and returns the page's CSRF token.
func (h *harness) login(t *testing.T, user string) string {
	t.Helper()
	st, _, body := h.do(t, http.MethodPost, "/ui/login", url.Values{"username": {user}, "password": {user + "-pw"}})
	if st != http.StatusSeeOther {
		t.Fatalf("login %s: %d %s", user, st, body)
	}
	_, _, page := h.do(t, http.MethodGet, "/ui/jobs", nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in %s", page)
	}
	return m[1]
}

func TestLoginOnlyAdmins(t *testing.T) {
	h := newHarness(t)
	st, hdr, _ := h.do(t, http.MethodGet, "/ui/repositories", nil)
	if st != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/ui/login?next=") {
		t.Fatalf("anonymous: %d %s, want a redirect to the login", st, hdr.Get("Location"))
	}
	st, _, body := h.do(t, http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"wrong-secret-123"}})
	if st != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password") {
		t.Errorf("wrong password: %d", st)
	}
	if strings.Contains(body, "wrong-secret-123") || strings.Contains(h.logText(), "wrong-secret-123") {
		t.Error("the password was echoed or logged")
	}
	st, _, body = h.do(t, http.MethodPost, "/ui/login", url.Values{"username": {"bob"}, "password": {"bob-pw"}})
	if st != http.StatusForbidden || !strings.Contains(body, "not an admin") {
		t.Errorf("non-admin: %d", st)
	}
	st, hdr, _ = h.do(t, http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"alice-pw"}, "next": {"//evil.example/"}})
	if st != http.StatusSeeOther || hdr.Get("Location") != "/ui/" {
		t.Errorf("admin: %d to %q, want 303 to /ui/ (never another site)", st, hdr.Get("Location"))
	}
	ck := hdr.Get("Set-Cookie")
	for _, want := range []string{cookieName + "=", "HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(ck, want) {
			t.Errorf("cookie %q lacks %s", ck, want)
		}
	}
	if st, _, _ := h.do(t, http.MethodGet, "/ui/repositories", nil); st != http.StatusOK {
		t.Errorf("logged in: %d", st)
	}
	if strings.Contains(h.logText(), "alice-pw") {
		t.Error("a password was logged")
	}
}

func TestSessionCookieTampered(t *testing.T) {
	h := newHarness(t)
	h.login(t, "alice")
	u, _ := url.Parse(h.srv.URL + "/ui/")
	cks := h.client.Jar.Cookies(u)
	if len(cks) != 1 {
		t.Fatalf("cookies %v", cks)
	}
	v := cks[0].Value
	parts := strings.Split(v, ".")
	parts[0] = "Ym9i" // "bob", same MAC
	for _, bad := range []string{strings.Join(parts, "."), v + "x", "", "a.b.c.d"} {
		h.client.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: bad, Path: "/ui/"}})
		if st, _, _ := h.do(t, http.MethodGet, "/ui/", nil); st != http.StatusSeeOther {
			t.Errorf("cookie %q: %d, want a redirect to the login", bad, st)
		}
	}
	// Expired: a console whose clock is past the session's end.
	k, _ := newKeys("s")
	old, _ := k.sign("alice", time.Now().Add(-time.Second))
	if _, ok := k.verify(old, time.Now()); ok {
		t.Error("an expired session was accepted")
	}
	good, _ := k.sign("alice", time.Now().Add(time.Hour))
	if user, ok := k.verify(good, time.Now()); !ok || user != "alice" {
		t.Errorf("valid session: %q %v", user, ok)
	}
	other, _ := newKeys("other secret")
	if _, ok := other.verify(good, time.Now()); ok {
		t.Error("a session signed with another secret was accepted")
	}
}

func TestCSRF(t *testing.T) {
	h := newHarness(t)
	token := h.login(t, "alice")
	if st, _, _ := h.do(t, http.MethodPost, "/ui/jobs/run", url.Values{}); st != http.StatusForbidden {
		t.Errorf("no token: %d, want 403", st)
	}
	if st, _, _ := h.do(t, http.MethodPost, "/ui/jobs/run", url.Values{"csrf": {token + "x"}}); st != http.StatusForbidden {
		t.Errorf("bad token: %d, want 403", st)
	}
	if st, _, _ := h.do(t, http.MethodPost, "/ui/jobs/run", url.Values{"csrf": {token}}, "Origin", "https://evil.example"); st != http.StatusForbidden {
		t.Errorf("cross-origin: %d, want 403", st)
	}
	for _, c := range h.api.calls {
		if strings.HasPrefix(c, "POST /api/v0/jobs") {
			t.Fatalf("a refused form reached the API: %v", h.api.calls)
		}
	}
	st, hdr, _ := h.do(t, http.MethodPost, "/ui/jobs/run", url.Values{"csrf": {token}}, "Origin", h.srv.URL)
	if st != http.StatusSeeOther || hdr.Get("Location") != "/ui/jobs?done=run" {
		t.Errorf("good token: %d %s", st, hdr.Get("Location"))
	}
	// Another session's token is not this one's.
	h2 := newHarness(t)
	other := h2.login(t, "alice")
	if other == token {
		t.Error("two sessions share a CSRF token")
	}
	// Logout needs the token too, and ends the session.
	if st, _, _ := h.do(t, http.MethodPost, "/ui/logout", url.Values{"csrf": {token}}); st != http.StatusSeeOther {
		t.Errorf("logout: %d", st)
	}
	if st, _, _ := h.do(t, http.MethodGet, "/ui/", nil); st != http.StatusSeeOther {
		t.Errorf("after logout: %d, want a redirect to the login", st)
	}
}

// TestEscaping renders every page with values that carry markup and checks
// that none of it comes out as markup.
func TestEscaping(t *testing.T) {
	h := newHarness(t)
	h.login(t, "alice")
	token := h.login(t, "alice")
	pages := []string{
		"/ui/", "/ui/repositories", "/ui/repositories?q=" + url.QueryEscape(evil),
		"/ui/repository?name=" + url.QueryEscape("library/"+evil), "/ui/repository?name=dev/app",
		"/ui/mirrors?repo=dev/app", "/ui/mirrors/edit?repo=dev/app&kind=poll&id=p1",
		"/ui/jobs", "/ui/jobs/table", "/ui/job?id=j1", "/ui/job/log?id=j1",
	}
	for _, p := range pages {
		st, hdr, body := h.do(t, http.MethodGet, p, nil)
		if st != http.StatusOK {
			t.Errorf("%s: %d", p, st)
			continue
		}
		checkInert(t, p, body)
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
	}
	// The login page shows the typed user name back.
	anon := newHarness(t)
	_, _, body := anon.do(t, http.MethodPost, "/ui/login", url.Values{"username": {evil}, "password": {"x"}, "next": {"/ui/" + evil}})
	checkInert(t, "login", body)
	// The form's errors from the API, with markup in them.
	for _, action := range []string{"save", "connect"} {
		st, _, body := h.do(t, http.MethodPost, "/ui/mirrors/edit", url.Values{"csrf": {token}, "repo": {"dev/app"},
			"direction": {"poll"}, "remoteHost": {"https://r.example"}, "remoteRepository": {evil}, "password": {"s3cret-pw"},
			"username": {"u"}, "action": {action}})
		if st != http.StatusBadRequest {
			t.Errorf("%s: %d", action, st)
		}
		checkInert(t, action, body)
		if strings.Contains(body, "s3cret-pw") {
			t.Errorf("%s: the password was sent back", action)
		}
	}
}

func checkInert(t *testing.T, where, body string) {
	t.Helper()
	for _, bad := range []string{"<script>alert", "<img src=x"} {
		if strings.Contains(body, bad) {
			t.Errorf("%s: %q came out as markup", where, bad)
		}
	}
	if !strings.Contains(body, "&lt;script&gt;") && !strings.Contains(body, "%3cscript%3e") && !strings.Contains(body, "%3Cscript%3E") {
		t.Errorf("%s: the escaped value is missing", where)
	}
}

// TestMirrorFormErrorsByField: API errors are shown next to the field they
// concern.
func TestMirrorFormErrorsByField(t *testing.T) {
	cases := []struct {
		code, msg, field string
	}{
		{"INVALID_INPUT", `remoteHost "x": want a registry URL`, "remoteHost"},
		{"INVALID_INPUT", "remoteRepository is required", "remoteRepository"},
		{"INVALID_INPUT", "remoteCA holds no PEM certificate", "remoteCA"},
		{"INVALID_INPUT", "give username and password (or access token) together, or neither", "credentials"},
		{"INVALID_INPUT", `rule on tag equals: values must not be empty`, "rules"},
		{"INVALID_INPUT", `tag template "%q": unknown placeholder`, "tagTemplate"},
		{"REMOTE_CONNECT_FAILED", "connecting to the remote registry failed: GET https://r/v2/: UNAUTHORIZED", "credentials"},
		{"REMOTE_CONNECT_FAILED", "connecting to the remote registry failed: dial tcp 127.0.0.1:1: connection refused", "remoteHost"},
		{"INTERNAL_ERROR", "internal error", "form"},
	}
	for _, c := range cases {
		if got := fieldOf(&apiError{400, c.code, c.msg}); got != c.field {
			t.Errorf("%s %q: field %s, want %s", c.code, c.msg, got, c.field)
		}
	}
	h := newHarness(t)
	token := h.login(t, "alice")
	_, _, body := h.do(t, http.MethodPost, "/ui/mirrors/edit", url.Values{"csrf": {token}, "repo": {"dev/app"},
		"direction": {"poll"}, "remoteRepository": {"x"}, "action": {"save"}})
	if !regexp.MustCompile(`(?s)id="err-remoteRepository"><p class="error field-error" role="alert">RemoteRepository`).MatchString(body) {
		t.Errorf("the error is not next to the remote repository field:\n%s", body)
	}
	if !strings.Contains(body, `id="remoteRepository" name="remoteRepository" value="x" placeholder="namespace/name" required aria-describedby="err-remoteRepository" aria-invalid="true"`) {
		t.Error("the field is not marked invalid")
	}
}

// TestSaveAndApply: the three buttons call the API as DTR's UI did.
func TestSaveAndApply(t *testing.T) {
	h := newHarness(t)
	token := h.login(t, "alice")
	for _, action := range []string{"save", "apply", "connect"} {
		h.do(t, http.MethodPost, "/ui/mirrors/edit", url.Values{"csrf": {token}, "repo": {"dev/app"}, "direction": {"push"},
			"registryType": {"dockerhub"}, "remoteRepository": {"team/app"}, "action": {action},
			"ruleField": {"tag", "tag"}, "ruleOperator": {"starts_with", "equals"}, "ruleValues": {"v1, v2", ""}})
	}
	want := []string{
		"POST /api/v0/repositories/dev/app/pushMirroringPolicies?initialEvaluation=false",
		"POST /api/v0/repositories/dev/app/pushMirroringPolicies?initialEvaluation=true",
		"POST /api/v0/repositories/dev/app/pushMirroringPolicies/connect",
	}
	got := strings.Join(h.api.calls, "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing call %s in\n%s", w, got)
		}
	}
	// The posted form becomes this policy.
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(url.Values{"registryType": {"dockerhub"},
		"remoteHost": {"https://ignored"}, "remoteRepository": {" team/app "}, "ruleField": {"tag", "platform"},
		"ruleOperator": {"starts_with", "one_of"}, "ruleValues": {"v1, v2", ""}, "enabled": {"on"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p, hub := policyFromForm(req)
	if !hub || p.RemoteHost != mirror.DockerHub || p.RemoteRepository != "team/app" || !p.Enabled ||
		len(p.Rules) != 1 || p.Rules[0].Operator != "starts_with" || strings.Join(p.Rules[0].Values, "|") != "v1|v2" {
		t.Errorf("policy %+v", p)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/jobs?x=1": "/ui/jobs?x=1", "//evil.example/ui/": "/ui/", "https://evil.example/ui/": "/ui/",
		"/ui/\\evil": "/ui/", "": "/ui/", "/v2/": "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRingBounded(t *testing.T) {
	r := newRing(3)
	for i := 0; i < 10; i++ {
		r.add(sample{At: time.Unix(int64(i), 0)})
	}
	all := r.all()
	if len(all) != 3 || all[0].At.Unix() != 7 || all[2].At.Unix() != 9 {
		t.Errorf("ring %v", all)
	}
	if len(r.buf) != 3 {
		t.Error("the ring grew")
	}
}

func TestSamplerRates(t *testing.T) {
	now := time.Unix(1000, 0)
	n := 0.0
	s := newSampler(StatsFunc(func() Stats { n += 50; return Stats{Requests: n} }), func() time.Time { return now })
	for i := 0; i < hourSamples+20; i++ {
		s.take()
		now = now.Add(10 * time.Second)
	}
	hour, day := s.snapshot()
	if len(hour) != hourSamples {
		t.Errorf("hour ring holds %d samples, want %d", len(hour), hourSamples)
	}
	if len(day) != 13 { // one per 5 minutes over 63m20s
		t.Errorf("day ring holds %d samples", len(day))
	}
	for _, p := range rates(hour, func(s Stats) float64 { return s.Requests }) {
		if p.V != 5 {
			t.Fatalf("rate %v, want 5/s", p.V)
		}
	}
}

func TestChartsEscapeLabels(t *testing.T) {
	out := string(lineChart(evil, time.Unix(0, 0), time.Unix(60, 0), count, series{Name: evil, Class: evil,
		Points: []point{{time.Unix(10, 0), 1}, {time.Unix(20, 0), 3}}}))
	out += string(barChart(evil, 10, part{evil, evil, 5}))
	if strings.Contains(out, "<script") || strings.Contains(out, "<img") {
		t.Errorf("markup in a chart: %s", out)
	}
	if !strings.Contains(out, "<polyline") || !strings.Contains(out, `width="300.0"`) {
		t.Errorf("chart lacks its line or bar: %s", out)
	}
}

func TestStaticAssetsEmbedded(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/ui/static/console.css", "/ui/static/console.js"} {
		st, hdr, body := h.do(t, http.MethodGet, p, nil)
		if st != http.StatusOK || len(body) < 100 || hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d, %d bytes", p, st, len(body))
		}
	}
	if st, _, body := h.do(t, http.MethodGet, "/ui/login", nil); st != http.StatusOK || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("login page: %d, or it loads something from elsewhere", st)
	}
}

// TestLoginPageHasNoNav: the typed user name on a failed login is not taken
// for a session (no nav, no logout).
func TestLoginPageHasNoNav(t *testing.T) {
	h := newHarness(t)
	_, _, body := h.do(t, http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"nope"}})
	if strings.Contains(body, "Log out") || strings.Contains(body, `href="/ui/repositories"`) {
		t.Error("a failed login page shows the logged-in navigation")
	}
	// A browser posting with Origin: null (what no-referrer gives) is refused.
	st, _, _ := h.do(t, http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"alice-pw"}}, "Origin", "null")
	if st != http.StatusForbidden {
		t.Errorf("Origin null: %d, want 403", st)
	}
}

// TestLinksWork follows the links of the mirrors page: a repository name with
// a slash must not be escaped twice on its way into an href.
func TestLinksWork(t *testing.T) {
	h := newHarness(t)
	h.login(t, "alice")
	_, _, body := h.do(t, http.MethodGet, "/ui/mirrors?repo=dev/app", nil)
	links := regexp.MustCompile(`href="(/ui/(?:mirrors|repository)[^"]*)"`).FindAllStringSubmatch(body, -1)
	if len(links) < 3 {
		t.Fatalf("links %v", links)
	}
	for _, l := range links {
		u := strings.ReplaceAll(l[1], "&amp;", "&")
		if st, _, _ := h.do(t, http.MethodGet, u, nil); st != http.StatusOK {
			t.Errorf("%s: %d", u, st)
		}
	}
}
