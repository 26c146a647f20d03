package config

import (
	"strings"
	"testing"
	"time"
)

func TestRedis(t *testing.T) {
	cfg, err := Parse([]byte(s3Base+`redis:
  addrs: [127.0.0.1:6379]
  password: `+secretPassword+`
  db: 2
  dialtimeout: 200ms
  readtimeout: 300ms
  writetimeout: 400ms
  poolsize: 8
  pooltimeout: 1s
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redis
	if !r.Enabled() || r.Address() != "127.0.0.1:6379" || r.DB != 2 || r.DialTimeout != 200*time.Millisecond ||
		r.ReadTimeout != 300*time.Millisecond || r.WriteTimeout != 400*time.Millisecond || r.PoolSize != 8 {
		t.Errorf("redis = %+v", r)
	}
	// distribution v2's keys.
	cfg, err = Parse([]byte(s3Base+"redis: {addr: 'redis:6379', pool: {maxidle: 4, maxactive: 16, idletimeout: 5m}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.Address() != "redis:6379" || cfg.Redis.Pool.MaxActive != 16 {
		t.Errorf("redis = %+v", cfg.Redis)
	}
	// Env overrides, as for every key.
	cfg, err = Parse([]byte(s3Base), []string{"REGISTRY_REDIS_ADDR=10.0.0.1:6379"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.Address() != "10.0.0.1:6379" {
		t.Errorf("env override: %+v", cfg.Redis)
	}
	// No redis: coordination off.
	cfg, err = Parse([]byte(s3Base), nil)
	if err != nil || cfg.Redis.Enabled() {
		t.Fatalf("no redis section: enabled %v, err %v", cfg.Redis.Enabled(), err)
	}
}

func TestRedisErrors(t *testing.T) {
	tests := []struct{ name, yaml, key, msg string }{
		{"filesystem", "version: 0.1\nredis: {addrs: ['127.0.0.1:6379']}\n", "redis", "needs"},
		{"no port", s3Base + "redis: {addrs: [redis]}\n", "redis.addrs", "host:port"},
		{"two addrs", s3Base + "redis: {addrs: ['a:1', 'b:2']}\n", "redis.addrs", "one address"},
		{"both keys", s3Base + "redis: {addrs: ['a:1'], addr: 'b:2'}\n", "redis.addr", "not both"},
		{"negative timeout", s3Base + "redis: {addr: 'a:1', readtimeout: -1s}\n", "redis.readtimeout", "negative"},
		{"negative db", s3Base + "redis: {addr: 'a:1', db: -1}\n", "redis.db", "negative"},
		{"unknown key", s3Base + "redis: {addr: 'a:1', adress: x}\n", "redis.adress", MsgUnknownKey},
		{"cert without key", s3Base + "redis: {addr: 'a:1', tls: {certificate: c.pem}}\n", "redis.tls.certificate", "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			e := asConfigError(t, err)
			if e.Key != tt.key || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q (key %q), want key %q and %q", err, e.Key, tt.key, tt.msg)
			}
		})
	}
	_, err := Parse([]byte(s3Base+"redis: {addr: nope, password: "+secretPassword+"}\n"), nil)
	if err == nil || strings.Contains(err.Error(), secretPassword) {
		t.Fatalf("error %v: must fail and not reveal the password", err)
	}
}
