package ui

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/mirror"
)

// engineHarness is a console over the real mirroring API and engine, whose
// job queue has no workers: a submitted job stays waiting.
type engineHarness struct {
	*harness
	mirrorAPI http.Handler
	jobs      *mirror.Jobs
}

// newEngineHarness serves a console (admin alice) over a mirroring engine
// whose hosted repositories are those of the namespace dev.
func newEngineHarness(t *testing.T) *engineHarness {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "mirror.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("opening the mirror db: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	jobs, err := mirror.OpenJobs(db)
	if err != nil {
		t.Fatalf("opening the job queue: %v", err)
	}
	eng := mirror.NewEngine(jobs, mirror.NewCopier(), mirror.Local{Host: "hosted.local",
		IsHosted: func(repo string) bool { return strings.HasPrefix(repo, "dev/") }})
	e := &engineHarness{jobs: jobs}
	cfg := config.Auth{Htpasswd: &config.Htpasswd{Realm: "test", Path: htpasswd(t, "alice")}, Admins: []string{"alice"}}
	e.harness = newHarnessOver(t, cfg, "", func(a *auth.Authorizer) http.Handler {
		e.mirrorAPI = mirror.NewAPI(eng, a)
		return e.mirrorAPI
	})
	return e
}

// apiGet reads path of the mirroring API as an admin into out and returns
// the status.
func (e *engineHarness) apiGet(t *testing.T, path string, out any) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v0"+path, nil)
	req = req.WithContext(mirror.WithAdmin(auth.WithUser(req.Context(), "alice"), "alice"))
	rec := httptest.NewRecorder()
	e.mirrorAPI.ServeHTTP(rec, req)
	if rec.Code == http.StatusOK && out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return rec.Code
}

// policies are dev/app's push policies as the API lists them.
func (e *engineHarness) policies(t *testing.T) []mirror.Policy {
	t.Helper()
	var ps []mirror.Policy
	if st := e.apiGet(t, "/repositories/dev/app/pushMirroringPolicies", &ps); st != http.StatusOK {
		t.Fatalf("listing policies: %d", st)
	}
	return ps
}

// post sends a console form with the CSRF token and wants a redirect to
// location.
func (e *engineHarness) post(t *testing.T, path string, form url.Values, location string) {
	t.Helper()
	st, hdr, body := e.do(t, http.MethodPost, path, form)
	if st != http.StatusSeeOther || hdr.Get("Location") != location {
		t.Fatalf("POST %s: %d to %q, want 303 to %q:\n%s", path, st, hdr.Get("Location"), location, body)
	}
}

// TestMirrorEditEnableDelete edits a push mirror in the console, disables
// and enables it, and deletes it, each seen through the mirroring API.
func TestMirrorEditEnableDelete(t *testing.T) {
	remote := testregistry.Start(t)
	e := newEngineHarness(t)
	token := e.login(t, "alice")
	policy := url.Values{"csrf": {token}, "repo": {"dev/app"}, "direction": {"push"}, "registryType": {"other"},
		"remoteHost": {remote.URL}, "remoteRepository": {"team/app"}, "tagTemplate": {"%n"}, "enabled": {"on"},
		"action": {"save"}}
	e.post(t, "/ui/mirrors/edit", policy, "/ui/mirrors?repo=dev%2Fapp&done=saved")
	ps := e.policies(t)
	if len(ps) != 1 {
		t.Fatalf("policies after creating one: %+v", ps)
	}
	id := ps[0].ID

	// Edit: the console's form with the id is an update of that policy.
	policy.Set("id", id)
	policy.Set("tagTemplate", "%n-mirrored")
	policy["ruleField"], policy["ruleOperator"], policy["ruleValues"] = []string{"tag"}, []string{"starts_with"}, []string{"v1"}
	e.post(t, "/ui/mirrors/edit", policy, "/ui/mirrors?repo=dev%2Fapp&done=saved")
	ps = e.policies(t)
	if len(ps) != 1 || ps[0].ID != id || ps[0].TagTemplate != "%n-mirrored" || len(ps[0].Rules) != 1 ||
		ps[0].Rules[0].Operator != "starts_with" || strings.Join(ps[0].Rules[0].Values, ",") != "v1" {
		t.Fatalf("after the edit: %+v", ps)
	}

	// Disable, then enable: the API's policy follows, and so does the tab.
	for _, c := range []struct {
		enabled, done, state, button string
	}{
		{"false", "disabled", "disabled", "Enable"},
		{"true", "enabled", "enabled", "Disable"},
	} {
		e.post(t, "/ui/mirrors/enable", url.Values{"csrf": {token}, "repo": {"dev/app"}, "direction": {"push"},
			"id": {id}, "enabled": {c.enabled}}, "/ui/mirrors?repo=dev%2Fapp&done="+c.done)
		var p mirror.Policy
		if st := e.apiGet(t, "/repositories/dev/app/pushMirroringPolicies/"+id, &p); st != http.StatusOK {
			t.Fatalf("%s: reading the policy: %d", c.done, st)
		}
		if want := c.enabled == "true"; p.Enabled != want || p.TagTemplate != "%n-mirrored" {
			t.Errorf("%s: policy %+v, want enabled=%v and the edit kept", c.done, p, want)
		}
		_, _, page := e.do(t, http.MethodGet, "/ui/mirrors?repo=dev/app", nil)
		if !strings.Contains(page, "<td>"+c.state+"</td>") || !strings.Contains(page, `<button type="submit">`+c.button+`</button>`) {
			t.Errorf("%s: the Mirrors tab does not say %s with an %s button:\n%s", c.done, c.state, c.button, page)
		}
	}

	// Delete.
	e.post(t, "/ui/mirrors/delete", url.Values{"csrf": {token}, "repo": {"dev/app"}, "direction": {"push"}, "id": {id}},
		"/ui/mirrors?repo=dev%2Fapp&done=deleted")
	if ps := e.policies(t); len(ps) != 0 {
		t.Errorf("after the delete: %+v", ps)
	}
	if st := e.apiGet(t, "/repositories/dev/app/pushMirroringPolicies/"+id, nil); st != http.StatusNotFound {
		t.Errorf("the deleted policy: %d, want 404", st)
	}
}

// TestJobCancel starts a job with Run now (it waits: the queue has no
// workers), cancels it with the job table's Cancel button, and sees it
// canceled in the API and on its page.
func TestJobCancel(t *testing.T) {
	e := newEngineHarness(t)
	token := e.login(t, "alice")
	e.post(t, "/ui/jobs/run", url.Values{"csrf": {token}}, "/ui/jobs?done=run")
	_, _, page := e.do(t, http.MethodGet, "/ui/jobs", nil)
	m := regexp.MustCompile(`name="id" value="([0-9a-f]+)"><button type="submit" class="danger" aria-label="Cancel job`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no Cancel button for the waiting job:\n%s", page)
	}
	id := m[1]
	if j, err := e.jobs.Get(t.Context(), id); err != nil || j.Status != mirror.StatusWaiting {
		t.Fatalf("before the cancel: %+v %v, want waiting", j, err)
	}
	e.post(t, "/ui/jobs/cancel", url.Values{"csrf": {token}, "id": {id}}, "/ui/jobs?done=canceled")
	var j mirror.Job
	if st := e.apiGet(t, "/jobs/"+id, &j); st != http.StatusOK || j.Status != mirror.StatusCancel {
		t.Fatalf("after the cancel: %d %+v, want status %s", st, j, mirror.StatusCancel)
	}
	_, _, page = e.do(t, http.MethodGet, "/ui/job?id="+id, nil)
	if !strings.Contains(page, `<span class="status status-cancel">cancel</span>`) || strings.Contains(page, "Cancel this job") {
		t.Errorf("the job's page does not show it canceled:\n%s", page)
	}
	// Without the session's token the cancel is refused.
	if st, _, _ := e.do(t, http.MethodPost, "/ui/jobs/cancel", url.Values{"id": {id}}); st != http.StatusForbidden {
		t.Errorf("a cancel without the token: %d, want 403", st)
	}
}
