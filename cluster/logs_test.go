package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/internal/syncbuf"
)

// go-redis's own messages reach our logger, not stderr.
func TestRouteClientLogs(t *testing.T) {
	var buf syncbuf.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.DebugLevel)
	RouteClientLogs(logrus.NewEntry(l))
	t.Cleanup(func() { RouteClientLogs(logrus.NewEntry(logrus.New())) })

	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 20 && !strings.Contains(buf.String(), "redis client:"); i++ {
		_ = c.Ping(ctx).Err()
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(buf.String(), "redis client:") {
		t.Fatalf("no go-redis message reached the logger:\n%s", buf.String())
	}
}
