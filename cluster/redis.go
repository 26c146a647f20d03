package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
)

// Prefix is put before every key this package writes in Redis, so a Redis
// shared with other programs (or distribution's blob descriptor cache) is safe.
const Prefix = "ocimirror:"

// probeInterval is how often a degraded Redis coordinator tries Redis again;
// between probes every operation fails at once without touching the network.
const probeInterval = time.Second

// opTimeout bounds one Redis round trip made by this package, whatever the
// client's own timeouts: coordination must never hold a pull up for long.
const opTimeout = 2 * time.Second

// Compare-and-extend: renew the lease only while it is still ours.
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// Compare-and-delete: release only our own lease, and tell the waiters.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("DEL", KEYS[1])
  redis.call("PUBLISH", KEYS[2], "released")
  return 1
end
return 0`)

// Redis is the Coordinator of a cluster: leases are keys set with SET NX PX
// and a random token, renewed by a compare-and-extend script and released by
// a compare-and-delete script that publishes the release; waiters subscribe to
// that channel and poll the key too (an expiry publishes nothing).
type Redis struct {
	client redis.UniversalClient
	log    *logrus.Entry
	// onState is called with true when Redis becomes unreachable and with
	// false when it is back (the metrics gauge).
	onState func(degraded bool)
	// Poll is how often a waiter checks the key besides its subscription.
	Poll time.Duration

	down      atomic.Bool
	nextProbe atomic.Int64 // unix nanos before which a degraded client does not try
	stateMu   sync.Mutex
}

// RedisOption configures a Redis coordinator.
type RedisOption func(*Redis)

// WithLogger sets where transitions to and from degraded mode are logged.
func WithLogger(l *logrus.Entry) RedisOption { return func(r *Redis) { r.log = l } }

// WithStateFunc calls f(true) when Redis becomes unreachable and f(false)
// when it answers again, and f(false) once at the start.
func WithStateFunc(f func(degraded bool)) RedisOption { return func(r *Redis) { r.onState = f } }

// NewRedis returns a coordinator on client. It does not contact Redis: a
// Redis down at the start is degraded mode, found at the first operation.
func NewRedis(client redis.UniversalClient, opts ...RedisOption) *Redis {
	r := &Redis{client: client, log: logrus.NewEntry(logrus.StandardLogger()), Poll: 200 * time.Millisecond}
	for _, o := range opts {
		o(r)
	}
	if r.onState != nil {
		r.onState(false)
	}
	return r
}

// Clustered is true.
func (r *Redis) Clustered() bool { return true }

// Degraded reports whether Redis was unreachable at the last attempt.
func (r *Redis) Degraded() bool { return r.down.Load() }

// Close closes the Redis client.
func (r *Redis) Close() error { return r.client.Close() }

// begin returns a context for one operation, or ErrUnavailable while degraded
// and before the next probe.
func (r *Redis) begin(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if r.down.Load() && time.Now().UnixNano() < r.nextProbe.Load() {
		return nil, nil, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	return ctx, cancel, nil
}

// result records whether Redis answered and turns a transport failure into
// ErrUnavailable. redis.Nil (no such key) is an answer.
func (r *Redis) result(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		r.setDown(false, nil)
		return err
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return err // the caller left; says nothing about Redis
	}
	r.setDown(true, err)
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (r *Redis) setDown(down bool, cause error) {
	if down {
		r.nextProbe.Store(time.Now().Add(probeInterval).UnixNano())
	}
	if r.down.Load() == down {
		return
	}
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	if r.down.Load() == down {
		return
	}
	r.down.Store(down)
	if down {
		r.log.WithError(cause).Warn("redis unreachable: cluster coordination degraded, this replica fetches alone")
	} else {
		r.log.Info("redis reachable again: cluster coordination restored")
	}
	if r.onState != nil {
		r.onState(down)
	}
}

// Lease takes key with SET NX PX and a random token, and renews it every
// ttl/3 while held. The renewal stops when the lease was lost (expired and
// taken by another replica); release deletes it only if it is still ours.
func (r *Redis) Lease(ctx context.Context, key string, ttl time.Duration) (bool, func(), error) {
	held, _, release, err := r.Hold(ctx, key, ttl)
	return held, release, err
}

// Hold is Lease, and also returns a channel closed when a held lease was lost:
// a renewal found it expired and taken by another replica (a long Redis outage
// or a stalled process). A lease held for long, such as the evictor's, must
// watch it.
func (r *Redis) Hold(ctx context.Context, key string, ttl time.Duration) (bool, <-chan struct{}, func(), error) {
	opCtx, cancel, err := r.begin(ctx)
	if err != nil {
		return false, nil, nil, err
	}
	defer cancel()
	token := newToken()
	k := leaseKey(key)
	ok, err := r.client.SetNX(opCtx, k, token, ttl).Result()
	if err = r.result(opCtx, err); err != nil {
		return false, nil, nil, fmt.Errorf("lease %s: %w", key, err)
	}
	if !ok {
		return false, nil, nil, nil
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	lost := make(chan struct{})
	go r.renew(k, token, ttl, stop, done, lost)
	var once sync.Once
	release := func() {
		once.Do(func() {
			close(stop)
			<-done
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			err := releaseScript.Run(ctx, r.client, []string{k, releasedChannel(key)}, token).Err()
			if err = r.result(ctx, err); err != nil {
				r.log.WithError(err).WithField("lease", key).Debug("lease not released; it expires")
			}
		})
	}
	return true, lost, release, nil
}

func (r *Redis) renew(k, token string, ttl time.Duration, stop, done, lost chan struct{}) {
	defer close(done)
	t := time.NewTicker(max(ttl/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), min(opTimeout, ttl/3+10*time.Millisecond))
		n, err := renewScript.Run(ctx, r.client, []string{k}, token, ttl.Milliseconds()).Int()
		err = r.result(ctx, err)
		cancel()
		if err == nil && n == 0 {
			r.log.WithField("lease", k).Warn("lease lost (expired and taken over); no longer renewed")
			close(lost)
			return
		}
		// A failed renewal is retried at the next tick: Redis may be back
		// before the lease expires.
	}
}

// Held reports whether another replica (or this one) holds the lease key now;
// an error (wrapping ErrUnavailable) means nobody can tell.
func (r *Redis) Held(ctx context.Context, key string) (bool, error) {
	opCtx, cancel, err := r.begin(ctx)
	if err != nil {
		return false, err
	}
	defer cancel()
	n, err := r.client.Exists(opCtx, leaseKey(key)).Result()
	if err = r.result(opCtx, err); err != nil {
		return false, fmt.Errorf("lease %s: %w", key, err)
	}
	return n > 0, nil
}

// WaitReleased subscribes to the key's release channel and polls the key (an
// expired lease publishes nothing) until it is free or ctx ends.
func (r *Redis) WaitReleased(ctx context.Context, key string) error {
	if _, _, err := r.begin(ctx); err != nil {
		return err
	}
	k := leaseKey(key)
	sub := r.client.Subscribe(ctx, releasedChannel(key))
	defer sub.Close()
	msgs := sub.Channel()
	t := time.NewTicker(r.Poll)
	defer t.Stop()
	for {
		opCtx, cancel := context.WithTimeout(ctx, opTimeout)
		n, err := r.client.Exists(opCtx, k).Result()
		err = r.result(opCtx, err)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("wait for lease %s: %w", key, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-msgs:
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Put sets key to value for ttl.
func (r *Redis) Put(ctx context.Context, key, value string, ttl time.Duration) error {
	opCtx, cancel, err := r.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	err = r.client.Set(opCtx, Prefix+"value:"+key, value, ttl).Err()
	if err = r.result(opCtx, err); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Get returns the value of key.
func (r *Redis) Get(ctx context.Context, key string) (string, bool, error) {
	opCtx, cancel, err := r.begin(ctx)
	if err != nil {
		return "", false, err
	}
	defer cancel()
	v, err := r.client.Get(opCtx, Prefix+"value:"+key).Result()
	if err = r.result(opCtx, err); errors.Is(err, redis.Nil) {
		return "", false, nil
	} else if err != nil {
		return "", false, fmt.Errorf("get %s: %w", key, err)
	}
	return v, true, nil
}

// leaseKey is the Redis key of the lease key.
func leaseKey(key string) string { return Prefix + "lease:" + key }

func releasedChannel(key string) string { return Prefix + "released:" + key }

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
