package mirror

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/internal/redistest"
)

// TestImportPolicies: a single node's policies are imported into the shared
// store once: a second start imports nothing, and a policy deleted in the
// cluster is not brought back.
func TestImportPolicies(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	db := openTestDB(t, filepath.Join(t.TempDir(), "mirror.db"))
	defer db.Close()
	local, err := NewBoltStore(db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var ids []string
	for _, k := range []Kind{Poll, Push} {
		p := Policy{ID: newJobID(now), LocalRepository: "dev/app", RemoteHost: "https://r.example", RemoteRepository: "x"}
		if _, err := local.addPolicy(ctx, storedPolicy{Kind: k, Policy: p, Mirrored: map[string]string{"v1": "sha256:1"}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	coord := cluster.NewRedis(redis.NewClient(&redis.Options{Addr: rs.Addr}), cluster.WithLogger(quietLog()))
	defer coord.Close()
	shared := NewRedisStore(coord)

	res, err := ImportPolicies(ctx, db, shared)
	if err != nil || res != (Imported{Added: 2}) {
		t.Fatalf("first import: %+v, %v", res, err)
	}
	sp, err := shared.getPolicy(ctx, ids[0])
	if err != nil || sp.Kind != Poll || sp.Mirrored["v1"] != "sha256:1" {
		t.Fatalf("imported policy: %+v, %v", sp, err)
	}
	if err := shared.deletePolicy(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	res, err = ImportPolicies(ctx, db, shared)
	if err != nil || res != (Imported{Skipped: 2}) {
		t.Fatalf("second import: %+v, %v", res, err)
	}
	if _, err := shared.getPolicy(ctx, ids[1]); err != ErrPolicyNotFound {
		t.Errorf("a policy deleted in the cluster came back: %v", err)
	}
}
