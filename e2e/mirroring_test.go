//go:build e2e

package e2e

// Mirroring through the built binary (issue 8): a poll policy mirrors a
// remote repository (distribution's registry) into a hosted one and keeps it
// current on the 2s schedule; a push policy pushes matching tags on to the
// remote under its tag template; policies and jobs survive a restart. All of
// it driven through DTR's /api/v0 as an admin, the way curl would.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ocimirror/proxy/internal/syncbuf"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// TODO(issue 8): an e2e test of `proxy mirror` (a linux/amd64 + linux/arm64 +
// windows/amd64 index with a signature referrer, copied between two
// registries with digests kept) goes here once cmd/proxy/mirror.go lands.

// mirrorWait bounds every wait for the mirroring engine: a poll runs every
// 2s, and a copy of the test's images takes well under a second.
const mirrorWait = 30 * time.Second

// apiPolicy is a mirroring policy as /api/v0 shows it.
type apiPolicy struct {
	ID               string `json:"id"`
	LocalRepository  string `json:"localRepository"`
	RemoteHost       string `json:"remoteHost"`
	RemoteRepository string `json:"remoteRepository"`
	TagTemplate      string `json:"tagTemplate"`
	Enabled          bool   `json:"enabled"`
	Rules            []struct {
		Field    string   `json:"field"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	} `json:"rules"`
	LastStatus *struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	} `json:"lastStatus"`
}

// apiJob is a job as /api/v0/jobs shows it.
type apiJob struct {
	ID         string            `json:"id"`
	Action     string            `json:"action"`
	Status     string            `json:"status"`
	Parameters map[string]string `json:"parameters"`
	Error      string            `json:"error"`
}

// api calls /api/v0 as the admin with a JSON body (nil: none), decodes the
// answer into out (nil: not), and fails the test unless the status is want.
func (h *hostedProxy) api(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader // nil: no body
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	status, _, text := h.request(t, method, "/api/v0"+path, hostedUser, hostedPass, rd)
	if status != want {
		t.Fatalf("%s /api/v0%s: status %d, want %d: %s", method, path, status, want, text)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(text), out); err != nil {
			t.Fatalf("%s /api/v0%s: %v in %s", method, path, err, text)
		}
	}
}

// jobs lists the jobs of action ("" all), newest first.
func (h *hostedProxy) jobs(t *testing.T, action string) []apiJob {
	t.Helper()
	var out struct{ Jobs []apiJob }
	h.api(t, http.MethodGet, "/jobs?limit=1000&action="+action, nil, http.StatusOK, &out)
	return out.Jobs
}

// jobLog returns the lines of a job's log.
func (h *hostedProxy) jobLog(t *testing.T, id string) []string {
	t.Helper()
	var out []struct{ Line string }
	h.api(t, http.MethodGet, "/jobs/"+id+"/logs", nil, http.StatusOK, &out)
	var lines []string
	for _, l := range out {
		lines = append(lines, l.Line)
	}
	return lines
}

// waitIdle waits until no job is waiting or running.
func (h *hostedProxy) waitIdle(t *testing.T) {
	t.Helper()
	err := waitUntil(mirrorWait, func() error {
		for _, st := range []string{"waiting", "running"} {
			var out struct{ Jobs []apiJob }
			h.api(t, http.MethodGet, "/jobs?status="+st, nil, http.StatusOK, &out)
			if len(out.Jobs) > 0 {
				return fmt.Errorf("%d jobs %s, e.g. %+v", len(out.Jobs), st, out.Jobs[0])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("jobs: %v\n%s", err, h.Logs)
	}
}

// headDigest asks the registry at base (http://host:port) for repo:tag's
// manifest digest with a HEAD, anonymously; "" when it has none.
func headDigest(t *testing.T, base, repo, tag string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, base+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", strings.Join([]string{string(types.OCIManifestSchema1), string(types.OCIImageIndex),
		string(types.DockerManifestSchema2), string(types.DockerManifestList)}, ", "))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("HEAD %s/%s:%s: %v", base, repo, tag, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// waitDigests waits until base serves every repo:tag of want at its digest.
func waitDigests(t *testing.T, what, base, repo string, want map[string]string, logs *syncbuf.Buffer) {
	t.Helper()
	err := waitUntil(mirrorWait, func() error {
		for tag, d := range want {
			if got := headDigest(t, base, repo, tag); got != d {
				return fmt.Errorf("%s:%s is at %q, want %s", repo, tag, got, d)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, logs)
	}
}

// remoteTags lists repo's tags on reg, sorted.
func remoteTags(t *testing.T, reg *testregistry.Registry, repo string) []string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(reg.URL + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var out struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("tags of %s: %d %v", repo, resp.StatusCode, err)
	}
	sort.Strings(out.Tags)
	return out.Tags
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// findLine returns the first line holding every part, "" when none does.
func findLine(lines []string, parts ...string) string {
	for _, l := range lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

// TestMirroring: (a) a poll policy with initial evaluation mirrors a remote
// repository into dev/polled, then the remote gets a new tag and a moved one
// and the 2s schedule brings both over without a manual job; the jobs API
// shows the scheduled poll_mirror jobs done, with logs; crane pulls the
// mirrored tags through the proxy at the remote's digests. (b) a push policy
// (tag starts_with release-, template %n-mirrored) on dev/pushed: crane's push
// of release-1 arrives at the remote as release-1-mirrored, dev-1 does not.
// (c) after a restart on the same root the policies and jobs are still there,
// and polling goes on.
func TestMirroring(t *testing.T) {
	requireTool(t, "crane", "go install github.com/google/go-containerregistry/cmd/crane@v0.22.1")
	remote := startRegistry(t)
	h := startHosted(t)
	creds := h.dockerConfig(t, hostedUser, hostedPass)

	// The API is for the admin only.
	if status, header, body := h.request(t, http.MethodGet, "/api/v0/jobs", "", "", nil); status != http.StatusUnauthorized ||
		header.Get("WWW-Authenticate") == "" {
		t.Fatalf("anonymous GET /api/v0/jobs: %d %q %s, want 401 with a challenge", status, header.Get("WWW-Authenticate"), body)
	}

	const remoteRepo = "upstream/app"
	img1 := platformImage(t, "linux", "amd64", types.OCIManifestSchema1, 2<<10, 300<<10)
	idx, _, _ := multiArch(t, 4<<10, 64<<10)
	remote.Push(t, remoteRepo+":v1", img1)
	remote.PushIndex(t, remoteRepo+":multi", idx)
	want := map[string]string{"v1": digestOf(t, img1), "multi": digestOf(t, idx)}

	var poll apiPolicy
	ok := t.Run("poll", func(t *testing.T) {
		h.api(t, http.MethodPost, "/repositories/dev/polled/pollMirroringPolicies?initialEvaluation=true",
			map[string]any{"remoteHost": remote.URL, "remoteRepository": remoteRepo, "enabled": true},
			http.StatusCreated, &poll)
		if poll.ID == "" || poll.LocalRepository != "dev/polled" || poll.RemoteHost != remote.URL || poll.TagTemplate != "%n" {
			t.Fatalf("created policy %+v", poll)
		}
		waitDigests(t, "initial evaluation", "http://"+h.Addr, "dev/polled", want, h.Logs)

		// The remote moves v1 and gets v2; no job is started by hand.
		img1b := platformImage(t, "linux", "amd64", types.OCIManifestSchema1, 2<<10, 200<<10)
		img2 := platformImage(t, "linux", "amd64", types.DockerManifestSchema2, 1<<10, 100<<10)
		remote.Push(t, remoteRepo+":v1", img1b)
		remote.Push(t, remoteRepo+":v2", img2)
		want["v1"], want["v2"] = digestOf(t, img1b), digestOf(t, img2)
		if want["v1"] == digestOf(t, img1) {
			t.Fatal("v1 did not move")
		}
		moved := time.Now()
		waitDigests(t, "after the remote changed", "http://"+h.Addr, "dev/polled", want, h.Logs)
		t.Logf("the schedule mirrored the moved and the new tag %s after the remote changed", time.Since(moved).Round(100*time.Millisecond))

		// The scheduled polls (no policy parameter: every enabled policy)
		// are done, and one of them logged the copies.
		// The copies land before the job that made them is marked done: wait
		// (bounded) for that.
		var scheduled []apiJob
		var copiedBy string
		for deadline := time.Now().Add(15 * time.Second); copiedBy == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			scheduled = scheduled[:0]
			for _, j := range h.jobs(t, "poll_mirror") {
				if j.Parameters["policy"] == "" && j.Status == "done" {
					scheduled = append(scheduled, j)
				}
			}
			for _, j := range scheduled {
				lines := h.jobLog(t, j.ID)
				if findLine(lines, "copied", ":v2 ", want["v2"]) != "" {
					copiedBy = j.ID
					if findLine(lines, "copied", ":v1 ", want["v1"]) == "" {
						t.Errorf("poll job %s copied v2 but logged no copy of the moved v1:\n%s", j.ID, strings.Join(lines, "\n"))
					}
					break
				}
			}
		}
		if copiedBy == "" {
			t.Fatalf("no done scheduled poll_mirror job logged the copy of v2 (%d done scheduled jobs)", len(scheduled))
		}
		var initial []apiJob
		var status struct{ Jobs []apiJob }
		h.api(t, http.MethodGet, "/jobs?action=poll_mirror&status=done", nil, http.StatusOK, &status)
		for _, j := range status.Jobs {
			if j.Parameters["policy"] == poll.ID {
				initial = append(initial, j)
			}
			if j.Status != "done" || j.Action != "poll_mirror" {
				t.Errorf("GET /jobs?action=poll_mirror&status=done listed %+v", j)
			}
		}
		if len(initial) != 1 || findLine(h.jobLog(t, initial[0].ID), "copied", ":multi ", want["multi"]) == "" {
			t.Errorf("the initial evaluation: %d done jobs for policy %s, want 1 that logged copying multi", len(initial), poll.ID)
		}
		var crons []struct{ Action, Schedule string }
		h.api(t, http.MethodGet, "/crons", nil, http.StatusOK, &crons)
		if len(crons) != 1 || crons[0].Action != "poll_mirror" || crons[0].Schedule != "@every 2s" {
			t.Errorf("GET /api/v0/crons: %+v, want poll_mirror @every 2s", crons)
		}
		var got apiPolicy
		h.api(t, http.MethodGet, "/repositories/dev/polled/pollMirroringPolicies/"+poll.ID, nil, http.StatusOK, &got)
		if got.LastStatus == nil || got.LastStatus.Code != "SUCCESS" {
			t.Errorf("policy status %+v, want SUCCESS", got.LastStatus)
		}

		// Pulled through the proxy with crane: the remote's digests, every
		// blob fetched and checked.
		anon := h.dockerConfig(t, "", "")
		for tag, d := range want {
			ref := h.Addr + "/dev/polled:" + tag
			if got, err := craneAs(anon, "digest", ref); err != nil || got != d {
				t.Errorf("crane digest %s = %q (%v), want the remote's %s", ref, got, err, d)
			}
			if out, err := craneAs(anon, "pull", "--format", "oci", ref, filepath.Join(t.TempDir(), tag)); err != nil {
				t.Errorf("crane pull %s: %v\n%s", ref, err, out)
			}
		}
	})
	if !ok {
		t.FailNow()
	}

	var push apiPolicy
	ok = t.Run("push", func(t *testing.T) {
		const dest = "pushed/app"
		h.api(t, http.MethodPost, "/repositories/dev/pushed/pushMirroringPolicies",
			map[string]any{"remoteHost": remote.URL, "remoteRepository": dest, "tagTemplate": "%n-mirrored", "enabled": true,
				"rules": []map[string]any{{"field": "tag", "operator": "starts_with", "values": []string{"release-"}}}},
			http.StatusCreated, &push)
		if push.ID == "" || push.TagTemplate != "%n-mirrored" || len(push.Rules) != 1 {
			t.Fatalf("created policy %+v", push)
		}
		// dev-1 first: had it made a job, that job would be done before
		// release-1's (events are handled in order).
		cranePush(t, creds, platformImage(t, "linux", "amd64", types.DockerManifestSchema2, 1<<10, 50<<10), h.Addr+"/dev/pushed:dev-1")
		rel := cranePush(t, creds, platformImage(t, "linux", "amd64", types.DockerManifestSchema2, 1<<10, 60<<10), h.Addr+"/dev/pushed:release-1")
		waitDigests(t, "push mirroring", remote.URL, dest, map[string]string{"release-1-mirrored": rel}, h.Logs)
		h.waitIdle(t)
		if tags := remoteTags(t, remote, dest); strings.Join(tags, ",") != "release-1-mirrored" {
			t.Errorf("the remote's %s has tags %v, want only release-1-mirrored", dest, tags)
		}
		if d := headDigest(t, remote.URL, dest, "dev-1-mirrored"); d != "" {
			t.Errorf("dev-1 arrived at the remote (%s)", d)
		}
		jobs := h.jobs(t, "push_mirror_tag")
		if len(jobs) != 1 || jobs[0].Parameters["tag"] != "release-1" || jobs[0].Status != "done" {
			t.Fatalf("push_mirror_tag jobs %+v, want one done for release-1", jobs)
		}
		if findLine(h.jobLog(t, jobs[0].ID), "copied", dest+":release-1-mirrored", rel) == "" {
			t.Errorf("job %s logged no copy to %s:release-1-mirrored", jobs[0].ID, dest)
		}
	})
	if !ok {
		t.FailNow()
	}

	t.Run("restart", func(t *testing.T) {
		before := h.jobs(t, "")
		if len(before) == 0 {
			t.Fatal("no jobs before the restart")
		}
		h.stop(t)
		h2 := startHostedOn(t, h.Root, h.htpasswd)

		var polls, pushes []apiPolicy
		h2.api(t, http.MethodGet, "/repositories/dev/polled/pollMirroringPolicies", nil, http.StatusOK, &polls)
		h2.api(t, http.MethodGet, "/repositories/dev/pushed/pushMirroringPolicies", nil, http.StatusOK, &pushes)
		if len(polls) != 1 || polls[0].ID != poll.ID || polls[0].RemoteRepository != remoteRepo || polls[0].RemoteHost != remote.URL {
			t.Errorf("poll policies after the restart: %+v, want %s", polls, poll.ID)
		}
		if len(pushes) != 1 || pushes[0].ID != push.ID || pushes[0].TagTemplate != "%n-mirrored" {
			t.Errorf("push policies after the restart: %+v, want %s", pushes, push.ID)
		}
		after := map[string]apiJob{}
		for _, j := range h2.jobs(t, "") {
			after[j.ID] = j
		}
		for _, j := range before {
			a, ok := after[j.ID]
			switch {
			case !ok:
				t.Errorf("job %s (%s, %s) is gone after the restart", j.ID, j.Action, j.Status)
			case j.Status == "done" && a.Status != "done":
				t.Errorf("job %s was done, after the restart it is %s", j.ID, a.Status)
			}
		}
		if len(h2.jobLog(t, before[len(before)-1].ID)) == 0 {
			t.Errorf("the oldest job's log is empty after the restart")
		}
		// The mirror is still served, and the schedule goes on.
		if d := headDigest(t, "http://"+h2.Addr, "dev/polled", "v2"); d != want["v2"] {
			t.Errorf("dev/polled:v2 after the restart: %q, want %s", d, want["v2"])
		}
		img3 := platformImage(t, "linux", "amd64", types.OCIManifestSchema1, 1<<10, 10<<10)
		remote.Push(t, remoteRepo+":v3", img3)
		waitDigests(t, "polling after the restart", "http://"+h2.Addr, "dev/polled", map[string]string{"v3": digestOf(t, img3)}, h2.Logs)
	})
}
