package mirror

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// TestClusterPolicyAPI: a policy created through replica a's API is listed,
// read and changed through replica b's, and deleted through a's is gone on
// b; a push received by b is pushed on by the policy created on a.
func TestClusterPolicyAPI(t *testing.T) {
	rs := redistest.Start(t)
	remoteReg := testregistry.Start(t)
	remoteReg.PushRandom(t, "team/app:v1", 256, 1)
	dir := t.TempDir()
	a := startReplica(t, rs, "a", replicaConfig{hostedDir: dir})
	b := startReplica(t, rs, "b", replicaConfig{hostedDir: dir})
	const polls = "/repositories/dev/app/pollMirroringPolicies"
	body := map[string]any{"remoteHost": remoteReg.URL, "remoteRepository": "team/app", "username": "u", "password": "secret"}
	var p Policy
	if st := a.call(t, "alice", http.MethodPost, polls, body, &p); st != http.StatusCreated {
		t.Fatalf("create on a: %d", st)
	}
	var list []Policy
	if st := b.call(t, "alice", http.MethodGet, polls, nil, &list); st != http.StatusOK || len(list) != 1 || list[0].ID != p.ID {
		t.Fatalf("list on b: %d %+v", st, list)
	}
	body["tagTemplate"], body["password"] = "m-%n", masked
	var changed Policy
	if st := b.call(t, "alice", http.MethodPut, polls+"/"+p.ID, body, &changed); st != http.StatusOK || changed.TagTemplate != "m-%n" {
		t.Fatalf("update on b: %d %+v", st, changed)
	}
	var got Policy
	if a.call(t, "alice", http.MethodGet, polls+"/"+p.ID, nil, &got); got.TagTemplate != "m-%n" {
		t.Errorf("a reads %+v after b's update", got)
	}
	if sp, _ := a.engine.store.getPolicy(context.Background(), p.ID); sp.Policy.Password != "secret" || len(sp.Mirrored) != 1 {
		t.Errorf("stored on a: password %q, mirrored %v (the masked password and the seen tags must be kept)", sp.Policy.Password, sp.Mirrored)
	}
	if st := a.call(t, "alice", http.MethodDelete, polls+"/"+p.ID, nil, nil); st != http.StatusNoContent {
		t.Fatalf("delete on a: %d", st)
	}
	if st := b.call(t, "alice", http.MethodGet, polls+"/"+p.ID, nil, nil); st != http.StatusNotFound {
		t.Errorf("b after the delete on a: %d", st)
	}

	push := map[string]any{"remoteHost": remoteReg.URL, "remoteRepository": "out/app"}
	if st := a.call(t, "alice", http.MethodPost, "/repositories/dev/app/pushMirroringPolicies", push, nil); st != http.StatusCreated {
		t.Fatalf("create a push policy on a: %d", st)
	}
	img, _ := random.Image(512, 1)
	ref, _ := name.ParseReference("hosted.local/dev/app:rel", name.Insecure)
	if err := remote.Write(ref, img, remote.WithTransport(b.reg.Transport())); err != nil {
		t.Fatal(err)
	}
	want := hexOf(t, img)
	deadline := time.Now().Add(15 * time.Second)
	for headDigest(t, remoteReg.Host, "out/app:rel") != want {
		if time.Now().After(deadline) {
			t.Fatal("a push received by b was not pushed on within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	jobs, _ := a.jobs.List(context.Background(), ActionPush, "", 0, 10)
	if len(jobs) != 1 {
		t.Fatalf("push jobs seen from a: %+v, want one", jobs)
	}
	waitStatusOn(t, a, jobs[0].ID, StatusDone, 10*time.Second)
}

// TestClusterPollOncePerInterval: three replicas with a short poll interval
// evaluate a poll policy once per interval between them, not once each: the
// remote's tag list is fetched once per slot.
func TestClusterPollOncePerInterval(t *testing.T) {
	rs := redistest.Start(t)
	remoteReg := testregistry.Start(t)
	remoteReg.PushRandom(t, "team/app:v1", 256, 1)
	dir := t.TempDir()
	interval := 400 * time.Millisecond
	var reps []*replica
	for _, n := range []string{"a", "b", "c"} {
		reps = append(reps, startReplica(t, rs, n, replicaConfig{hostedDir: dir, interval: interval}))
	}
	body := map[string]any{"remoteHost": remoteReg.URL, "remoteRepository": "team/app"}
	if st := reps[0].call(t, "alice", http.MethodPost, "/repositories/dev/app/pollMirroringPolicies", body, nil); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	agree := func() (bool, [3][]Cron) {
		var crons [3][]Cron
		for i, r := range reps {
			r.call(t, "alice", http.MethodGet, "/crons", nil, &crons[i])
			if len(crons[i]) != 1 {
				return false, crons
			}
		}
		return crons[0][0].NextRun.Equal(crons[1][0].NextRun) && crons[1][0].NextRun.Equal(crons[2][0].NextRun), crons
	}
	for try := 0; ; try++ { // three reads may straddle a slot's start: not twice in a row
		ok, crons := agree()
		if ok {
			break
		}
		if try == 2 {
			t.Errorf("the replicas disagree on the next scheduled poll: %+v", crons)
			break
		}
	}
	start, before := time.Now(), remoteReg.Count(http.MethodGet, "tags")
	time.Sleep(8 * interval)
	end, fetched := time.Now(), remoteReg.Count(http.MethodGet, "tags")-before
	slots := int64(end.Truncate(interval).Sub(start.Truncate(interval)) / interval)
	scheduled := 0
	all, _ := reps[1].jobs.List(context.Background(), ActionPoll, "", 0, 1000)
	for _, j := range all {
		if j.Parameters["policy"] == "" {
			scheduled++
		}
	}
	t.Logf("%d slots: %d tag lists fetched, %d scheduled polls in all (3 replicas)", slots, fetched, scheduled)
	if fetched > slots+1 || fetched < slots-2 {
		t.Errorf("%d tag lists fetched in %d poll slots by 3 replicas, want one per slot", fetched, slots)
	}
}
