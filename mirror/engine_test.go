package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/hosted"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// server is a hosted registry with the mirroring engine and its API, as
// proxy serve wires them, with admin alice and plain user bob.
type server struct {
	api     string // base URL of /api/v0
	reg     *hosted.Registry
	engine  *Engine
	handler http.Handler // the API handler itself, for in-process requests
}

func startServer(t *testing.T) *server {
	t.Helper()
	log := quietLog()
	reg, err := hosted.New(context.Background(), t.TempDir(), hosted.WithLogger(log), hosted.WithDelete(true))
	if err != nil {
		t.Fatal(err)
	}
	db := openTestDB(t, filepath.Join(t.TempDir(), "mirror.db"))
	jobs, err := OpenJobs(db, WithJobLogger(log), WithJobBackoff(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	ns := config.Hosted{Namespaces: []string{"dev"}}
	eng := NewEngine(jobs, NewCopier(WithLogger(log), WithRetries(2, 10*time.Millisecond)),
		Local{Host: "hosted.local", Transport: reg.Transport(), IsHosted: ns.IsHosted},
		WithEngineLogger(log), WithPollInterval(time.Hour))
	authz, err := auth.New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: htpasswd(t, "alice", "bob")},
		Admins: []string{"alice"}}, auth.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	events, unsubscribe := reg.Subscribe(100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { jobs.Run(ctx); done <- struct{}{} }()
	go func() { eng.Run(ctx, events); done <- struct{}{} }()
	srv := httptest.NewServer(NewAPI(eng, authz))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		<-done
		unsubscribe()
		db.Close()
		reg.Close()
	})
	return &server{api: srv.URL + "/api/v0", reg: reg, engine: eng, handler: srv.Config.Handler}
}

// htpasswd writes users whose password is their name.
func htpasswd(t *testing.T, users ...string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		h, _ := bcrypt.GenerateFromPassword([]byte(u), bcrypt.MinCost)
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// call does an API request as user ("" anonymous) and decodes a JSON answer
// into out when it is not nil.
func (s *server) call(t *testing.T, user, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.api+path, rd)
	if user != "" {
		req.SetBasicAuth(user, user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// localDigest resolves a tag of a hosted repository ("" when it is absent).
func (s *server) localDigest(t *testing.T, repoTag string) string {
	t.Helper()
	ref, _ := name.ParseReference("hosted.local/"+repoTag, name.Insecure)
	d, err := remote.Head(ref, remote.WithTransport(s.reg.Transport()))
	if err != nil {
		return ""
	}
	return d.Digest.String()
}

// waitJobCount waits until at least n jobs exist, for at most 10s.
func (s *server) waitJobCount(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if jobs, _ := s.engine.jobs.List(context.Background(), "", "", 0, n); len(jobs) >= n {
			return
		}
	}
	t.Fatalf("fewer than %d jobs after 10s", n)
}

// waitJobs waits until no job is waiting or running, for at most 20s.
func (s *server) waitJobs(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		busy := 0
		for _, st := range []Status{StatusWaiting, StatusRunning} {
			jobs, _ := s.engine.jobs.List(context.Background(), "", st, 0, 100)
			busy += len(jobs)
		}
		if busy == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("jobs did not finish")
}

func TestPolicyAPI(t *testing.T) {
	remoteReg := testregistry.Start(t)
	remoteReg.PushRandom(t, "team/app:v1", 256, 1)
	s := startServer(t)
	good := map[string]any{"remoteHost": remoteReg.URL, "remoteRepository": "team/app", "username": "u", "password": "secret"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	const polls = "/repositories/dev/app/pollMirroringPolicies"
	cases := []struct {
		name, user, method, path string
		body                     any
		status                   int
		code                     string
	}{
		{"anonymous", "", http.MethodGet, polls, nil, http.StatusUnauthorized, "UNAUTHORIZED"},
		{"not an admin", "bob", http.MethodGet, polls, nil, http.StatusForbidden, "DENIED"},
		{"not hosted", "alice", http.MethodPost, "/repositories/library/app/pollMirroringPolicies", good, http.StatusNotFound, "NO_SUCH_REPOSITORY"},
		{"bad json", "alice", http.MethodPost, polls, "{", http.StatusBadRequest, "INVALID_JSON"},
		{"unknown field", "alice", http.MethodPost, polls, with("colour", "red"), http.StatusBadRequest, "INVALID_JSON"},
		{"scanner rule", "alice", http.MethodPost, polls, with("rules", []Rule{{"vulnerability_critical", "greater_than", []string{"0"}}}), http.StatusBadRequest, "INVALID_INPUT"},
		{"bad template", "alice", http.MethodPost, polls, with("tagTemplate", "%q"), http.StatusBadRequest, "INVALID_INPUT"},
		{"unreachable", "alice", http.MethodPost, polls, with("remoteHost", "http://127.0.0.1:1"), http.StatusBadRequest, "REMOTE_CONNECT_FAILED"},
		{"no such policy", "alice", http.MethodGet, polls + "/nope", nil, http.StatusNotFound, "NO_SUCH_MIRRORING_POLICY"},
		{"connect anonymous", "", http.MethodPost, polls + "/connect", good, http.StatusUnauthorized, "UNAUTHORIZED"},
		{"connect unreachable", "alice", http.MethodPost, polls + "/connect", with("remoteHost", "http://127.0.0.1:1"), http.StatusBadRequest, "REMOTE_CONNECT_FAILED"},
		{"connect bad template", "alice", http.MethodPost, polls + "/connect", with("tagTemplate", "%q"), http.StatusBadRequest, "INVALID_INPUT"},
		{"no such job", "alice", http.MethodGet, "/jobs/nope", nil, http.StatusNotFound, "NO_SUCH_JOB"},
		{"bad job", "alice", http.MethodPost, "/jobs", map[string]string{"action": "push_mirror_tag"}, http.StatusBadRequest, "INVALID_INPUT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out struct {
				Errors []struct{ Code, Message string }
			}
			status := s.call(t, tc.user, tc.method, tc.path, rawOr(tc.body), &out)
			if status != tc.status || len(out.Errors) == 0 || out.Errors[0].Code != tc.code {
				t.Errorf("%d %+v, want %d %s", status, out.Errors, tc.status, tc.code)
			}
		})
	}

	// Connect checks and stores nothing.
	var connected map[string]bool
	if st := s.call(t, "alice", http.MethodPost, polls+"/connect", good, &connected); st != http.StatusOK || !connected["connected"] {
		t.Fatalf("connect: %d %v", st, connected)
	}
	if sps, _ := s.engine.store.listPolicies(context.Background(), Poll, "dev/app"); len(sps) != 0 {
		t.Fatalf("connect stored %d policies", len(sps))
	}

	// Create, read, change, delete.
	var p Policy
	if st := s.call(t, "alice", http.MethodPost, polls+"?initialEvaluation=false", good, &p); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	if p.ID == "" || p.Password != masked || !p.Enabled || p.TagTemplate != "%n" || p.LocalRepository != "dev/app" {
		t.Errorf("created %+v", p)
	}
	var list []Policy
	if s.call(t, "alice", http.MethodGet, polls, nil, &list); len(list) != 1 || list[0].ID != p.ID {
		t.Errorf("list %+v", list)
	}
	var changed Policy
	if st := s.call(t, "alice", http.MethodPut, polls+"/"+p.ID, with("password", masked, "tagTemplate", "m-%n", "enabled", false), &changed); st != http.StatusOK {
		t.Fatalf("update: %d", st)
	}
	stored, _ := s.engine.store.getPolicy(context.Background(), p.ID)
	if changed.TagTemplate != "m-%n" || changed.Enabled || stored.Policy.Password != "secret" {
		t.Errorf("updated %+v, stored password %q", changed, stored.Policy.Password)
	}
	// Disabling never connects: it works while the remote is unreachable;
	// enabling again does connect.
	if st := s.call(t, "alice", http.MethodPut, polls+"/"+p.ID, with("password", masked, "remoteHost", "http://127.0.0.1:1", "enabled", false), nil); st != http.StatusOK {
		t.Errorf("disable with the remote down: %d", st)
	}
	if st := s.call(t, "alice", http.MethodPut, polls+"/"+p.ID, with("password", masked, "remoteHost", "http://127.0.0.1:1", "enabled", true), nil); st != http.StatusBadRequest {
		t.Errorf("enable with the remote down: %d, want 400", st)
	}
	if st := s.call(t, "alice", http.MethodGet, "/repositories/dev/app/pushMirroringPolicies/"+p.ID, nil, nil); st != http.StatusNotFound {
		t.Errorf("a poll policy read as a push policy: %d", st)
	}
	if st := s.call(t, "alice", http.MethodDelete, polls+"/"+p.ID, nil, nil); st != http.StatusNoContent {
		t.Errorf("delete: %d", st)
	}
	if st := s.call(t, "alice", http.MethodGet, polls+"/"+p.ID, nil, nil); st != http.StatusNotFound {
		t.Errorf("after delete: %d", st)
	}
	var crons []Cron
	if s.call(t, "alice", http.MethodGet, "/crons", nil, &crons); len(crons) != 1 || crons[0].Action != ActionPoll || crons[0].NextRun.IsZero() {
		t.Errorf("crons %+v", crons)
	}
}

// rawOr sends a string body as it is (bad JSON), anything else as JSON.
func rawOr(body any) any {
	if s, ok := body.(string); ok {
		return json.RawMessage(s)
	}
	return body
}

func TestPollMirroring(t *testing.T) {
	remoteReg := testregistry.Start(t)
	v1img := remoteReg.PushRandom(t, "team/app:v1", 1024, 2)
	v2img := remoteReg.PushRandom(t, "team/app:v2", 1024, 2)
	remoteReg.PushRandom(t, "team/app:skip-me", 256, 1)
	s := startServer(t)
	body := map[string]any{"remoteHost": remoteReg.URL, "remoteRepository": "team/app",
		"rules": []Rule{{Field: "tag", Operator: OpStartsWith, Values: []string{"v"}}}}
	var p Policy
	if st := s.call(t, "alice", http.MethodPost, "/repositories/dev/app/pollMirroringPolicies?initialEvaluation=true", body, &p); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	s.waitJobs(t)
	for tag, img := range map[string]v1.Image{"v1": v1img, "v2": v2img} {
		if got := s.localDigest(t, "dev/app:"+tag); got != hexOf(t, img) {
			t.Errorf("dev/app:%s = %q, want %s", tag, got, hexOf(t, img))
		}
	}
	if got := s.localDigest(t, "dev/app:skip-me"); got != "" {
		t.Errorf("a tag the rules exclude was mirrored: %s", got)
	}

	// The remote moves v1 and adds v3; a poll copies those and only HEADs v2.
	moved := remoteReg.PushRandom(t, "team/app:v1", 1024, 2)
	v3 := remoteReg.PushRandom(t, "team/app:v3", 1024, 2)
	getsBefore := remoteReg.Count(http.MethodGet, "manifests")
	var job Job
	if st := s.call(t, "alice", http.MethodPost, "/jobs", map[string]string{"action": ActionPoll}, &job); st != http.StatusAccepted {
		t.Fatalf("run poll: %d", st)
	}
	s.waitJobs(t)
	if got := s.localDigest(t, "dev/app:v1"); got != hexOf(t, moved) {
		t.Errorf("moved v1 = %s, want %s", got, hexOf(t, moved))
	}
	if got := s.localDigest(t, "dev/app:v3"); got != hexOf(t, v3) {
		t.Errorf("new v3 = %s", got)
	}
	if gets := remoteReg.Count(http.MethodGet, "manifests") - getsBefore; gets != 2 {
		t.Errorf("%d manifest GETs upstream for 2 changed tags (v2 should cost a HEAD only)", gets)
	}
	var logs []LogLine
	s.call(t, "alice", http.MethodGet, "/jobs/"+job.ID+"/logs", nil, &logs)
	if !logsContain(logs, "unchanged v2") || !logsContain(logs, "copied") {
		t.Errorf("job log: %+v", logs)
	}
	var got Policy
	s.call(t, "alice", http.MethodGet, "/repositories/dev/app/pollMirroringPolicies/"+p.ID, nil, &got)
	if got.LastStatus == nil || got.LastStatus.Code != "SUCCESS" {
		t.Errorf("lastStatus %+v", got.LastStatus)
	}

	// The remote goes away: the mirror still serves what it copied, and the
	// policy says what failed.
	remoteReg.Stop()
	s.call(t, "alice", http.MethodPost, "/jobs", map[string]string{"action": ActionPoll}, &job)
	s.waitJobs(t)
	if got := s.localDigest(t, "dev/app:v3"); got != hexOf(t, v3) {
		t.Errorf("with the remote down, dev/app:v3 = %q", got)
	}
	s.call(t, "alice", http.MethodGet, "/repositories/dev/app/pollMirroringPolicies/"+p.ID, nil, &got)
	if got.LastStatus == nil || got.LastStatus.Code != "FAILED" || !strings.Contains(got.LastStatus.Detail, "connection refused") {
		t.Errorf("lastStatus with the remote down: %+v", got.LastStatus)
	}
	if j, _ := s.engine.jobs.Get(context.Background(), job.ID); j.Status != StatusError {
		t.Errorf("poll job with the remote down: %+v", j)
	}
}

func logsContain(logs []LogLine, s string) bool {
	for _, l := range logs {
		if strings.Contains(l.Line, s) {
			return true
		}
	}
	return false
}

// Without initial evaluation, the remote's present tags are recorded, not
// copied; later ones are.
func TestPollWithoutInitialEvaluation(t *testing.T) {
	remoteReg := testregistry.Start(t)
	remoteReg.PushRandom(t, "team/app:old", 256, 1)
	s := startServer(t)
	body := map[string]any{"remoteHost": remoteReg.URL, "remoteRepository": "team/app"}
	if st := s.call(t, "alice", http.MethodPost, "/repositories/dev/app/pollMirroringPolicies", body, nil); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	fresh := remoteReg.PushRandom(t, "team/app:new", 256, 1)
	s.call(t, "alice", http.MethodPost, "/jobs", map[string]string{"action": ActionPoll}, nil)
	s.waitJobs(t)
	if got := s.localDigest(t, "dev/app:old"); got != "" {
		t.Errorf("old tag copied: %s", got)
	}
	if got := s.localDigest(t, "dev/app:new"); got != hexOf(t, fresh) {
		t.Errorf("new tag = %q", got)
	}
}

func TestPushMirroring(t *testing.T) {
	remoteReg := testregistry.Start(t)
	s := startServer(t)
	body := map[string]any{"remoteHost": remoteReg.URL, "remoteRepository": "mirrored/app", "tagTemplate": "%n-mirror",
		"rules": []Rule{{Field: "tag", Operator: OpStartsWith, Values: []string{"release-"}}}}
	if st := s.call(t, "alice", http.MethodPost, "/repositories/dev/app/pushMirroringPolicies", body, nil); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	push := func(tag string) v1.Image {
		img, _ := random.Image(512, 2)
		ref, _ := name.ParseReference("hosted.local/dev/app:"+tag, name.Insecure)
		if err := remote.Write(ref, img, remote.WithTransport(s.reg.Transport())); err != nil {
			t.Fatal(err)
		}
		return img
	}
	rel := push("release-1")
	push("dev-1")
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		if d, err := remote.Head(remoteReg.Ref(t, "mirrored/app:release-1-mirror")); err == nil {
			got = d.Digest.String()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != hexOf(t, rel) {
		t.Fatalf("pushed release-1 arrived as %q, want %s", got, hexOf(t, rel))
	}
	s.waitJobs(t)
	if _, err := remote.Head(remoteReg.Ref(t, "mirrored/app:dev-1-mirror")); err == nil {
		t.Error("a tag the rules exclude was pushed")
	}
}

// hexOf is the digest string of an image.
func hexOf(t *testing.T, img v1.Image) string { t.Helper(); return digestOf(t, img).String() }

// License and platform rules are applied by the push job, which reads the
// image: an MIT image goes, a GPL one does not, and only linux/amd64 of an
// index is pushed.
func TestPushMirroringLicenseAndPlatform(t *testing.T) {
	remoteReg := testregistry.Start(t)
	s := startServer(t)
	body := map[string]any{"remoteHost": remoteReg.URL, "remoteRepository": "out/app", "rules": []Rule{
		{Field: "license", Operator: OpOneOf, Values: []string{"MIT", "Apache-2.0"}},
		{Field: "platform", Operator: OpOneOf, Values: []string{"linux/amd64"}},
	}}
	if st := s.call(t, "alice", http.MethodPost, "/repositories/dev/app/pushMirroringPolicies", body, nil); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	licensed := func(p v1.Platform, license string) v1.Image {
		img := platformImage(t, p, 256, 1)
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.Config.Labels = map[string]string{LicenseKey: license}
		img, err := mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	local := func(tag string) name.Reference {
		ref, _ := name.ParseReference("hosted.local/dev/app:"+tag, name.Insecure)
		return ref
	}
	tr := remote.WithTransport(s.reg.Transport())
	if err := remote.Write(local("gpl"), licensed(linuxAMD64, "GPL-3.0-only"), tr); err != nil {
		t.Fatal(err)
	}
	amd, arm := licensed(linuxAMD64, "MIT"), licensed(linuxARM64, "MIT")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &linuxAMD64}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &linuxARM64}})
	if err := remote.WriteIndex(local("mit"), idx, tr); err != nil {
		t.Fatal(err)
	}
	s.waitJobCount(t, 2) // the push events become jobs asynchronously
	s.waitJobs(t)
	if _, err := remote.Head(remoteReg.Ref(t, "out/app:gpl")); err == nil {
		t.Error("the GPL image was pushed")
	}
	got, err := remote.Index(remoteReg.Ref(t, "out/app:mit"))
	if err != nil {
		jobs, _ := s.engine.jobs.List(context.Background(), "", "", 0, 10)
		for _, j := range jobs {
			logs, _ := s.engine.jobs.Logs(context.Background(), j.ID)
			t.Logf("job %+v: %+v", j, logs)
		}
		t.Fatalf("the MIT index was not pushed: %v", err)
	}
	im, _ := got.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != digestOf(t, amd) {
		t.Errorf("pushed index %+v, want linux/amd64 only", im.Manifests)
	}
}

// A scheduled poll is not submitted while the previous one has not finished.
func TestSchedulePollNoPileUp(t *testing.T) {
	db := openTestDB(t, filepath.Join(t.TempDir(), "mirror.db"))
	defer db.Close()
	jobs, err := OpenJobs(db, WithJobLogger(quietLog())) // not running: jobs stay waiting
	if err != nil {
		t.Fatal(err)
	}
	eng := NewEngine(jobs, NewCopier(), Local{}, WithEngineLogger(quietLog()))
	if _, err := jobs.Submit(context.Background(), ActionPoll, map[string]string{"policy": "p1"}, 0); err != nil { // one policy's: no bar
		t.Fatal(err)
	}
	for range 3 {
		eng.schedulePoll(context.Background(), time.Now())
	}
	all, _ := jobs.List(context.Background(), ActionPoll, "", 0, 10)
	if len(all) != 2 {
		t.Fatalf("%d poll jobs after three ticks with the first still waiting, want 2 (one policy's, one scheduled)", len(all))
	}
}

// TestWithAdminSkipsAuth: a request whose context an in-process caller marked
// with WithAdmin is served without credentials; the same request unmarked is
// refused.
func TestWithAdminSkipsAuth(t *testing.T) {
	s := startServer(t)
	h := s.handler
	req := httptest.NewRequest(http.MethodGet, "/api/v0/jobs", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("unmarked: %d, want 401", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(WithAdmin(req.Context(), "alice")))
	if rec.Code != http.StatusOK {
		t.Fatalf("marked: %d %s", rec.Code, rec.Body)
	}
}
