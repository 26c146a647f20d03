package config

import (
	"net"
	"strconv"
	"strings"
	"time"
)

// Redis is distribution's `redis` section (v3: go-redis's universal options
// inline, plus tls), which here turns on cluster coordination: replicas that
// share one object store bucket (storage.s3, gcs or azure) take leases in
// Redis so that one replica fills a digest and one revalidates a tag for the
// whole cluster. It requires an object store; a filesystem root is not
// shared, so there is no cluster to coordinate. An empty section (no address) leaves coordination off.
type Redis struct {
	// Addrs is the Redis server's host:port (distribution v3's key; only the
	// first address is used: a single server, no cluster or sentinel yet).
	Addrs []string `yaml:"addrs"`
	// Addr is distribution v2's key for the same, accepted for old configs.
	Addr string `yaml:"addr"`
	// Username and Password authenticate (ACL user, or password alone).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB is the database selected after connecting.
	DB int `yaml:"db"`
	// ClientName is set with CLIENT SETNAME on every connection.
	ClientName string `yaml:"clientname"`
	// DialTimeout, ReadTimeout and WriteTimeout bound each connection and
	// command (defaults 500ms each: coordination must fail fast so that a
	// replica whose Redis is gone serves alone without delay).
	DialTimeout  time.Duration `yaml:"dialtimeout"`
	ReadTimeout  time.Duration `yaml:"readtimeout"`
	WriteTimeout time.Duration `yaml:"writetimeout"`
	// MaxRetries is how often a failed command is retried (default 0 here:
	// a lease that fails is a degraded fetch, not a reason to wait).
	MaxRetries int `yaml:"maxretries"`
	// Pool: distribution's pool keys, passed to go-redis.
	PoolSize        int           `yaml:"poolsize"`
	PoolTimeout     time.Duration `yaml:"pooltimeout"`
	MinIdleConns    int           `yaml:"minidleconns"`
	MaxIdleConns    int           `yaml:"maxidleconns"`
	ConnMaxIdleTime time.Duration `yaml:"connmaxidletime"`
	ConnMaxLifetime time.Duration `yaml:"connmaxlifetime"`
	// Pool is distribution v2's pool section (maxidle, maxactive,
	// idletimeout), accepted for old configs.
	Pool RedisPool `yaml:"pool"`
	// TLS: a client certificate and extra root CAs; with none of them set
	// the connection is plain.
	TLS RedisTLS `yaml:"tls"`
}

// RedisPool is distribution v2's redis.pool section.
type RedisPool struct {
	MaxIdle     int           `yaml:"maxidle"`
	MaxActive   int           `yaml:"maxactive"`
	IdleTimeout time.Duration `yaml:"idletimeout"`
}

// RedisTLS is distribution's redis.tls section.
type RedisTLS struct {
	// Certificate and Key are a client certificate and its key (PEM files).
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
	// RootCAs are PEM files of CAs trusted for the server, beside the system's.
	RootCAs []string `yaml:"rootcas"`
	// Enabled turns TLS on with the system roots alone (distribution v2's key).
	Enabled bool `yaml:"enabled"`
}

// Address returns the Redis address to connect to, "" when coordination is off.
func (r Redis) Address() string {
	if len(r.Addrs) > 0 {
		return r.Addrs[0]
	}
	return r.Addr
}

// Enabled reports whether a Redis address is configured.
func (r Redis) Enabled() bool { return r.Address() != "" }

// TLSEnabled reports whether the connection to Redis uses TLS.
func (r Redis) TLSEnabled() bool {
	return r.TLS.Enabled || r.TLS.Certificate != "" || len(r.TLS.RootCAs) > 0
}

// validateRedis checks the redis section: an address with a port, an object
// store (a cluster needs shared storage), sane timeouts and pool sizes.
func (c *Config) validateRedis() error {
	r := &c.Redis
	if !r.Enabled() {
		return nil
	}
	if !c.Storage.ObjectStore() {
		return newError("redis", "", "needs an object store (storage.s3, gcs or azure): it coordinates replicas that share one bucket "+
			"(a cluster needs shared storage); with the filesystem driver each replica has its own cache and there is no cluster "+
			"to coordinate (remove redis, or configure an object store)")
	}
	if len(r.Addrs) > 1 {
		return newError("redis.addrs", strings.Join(r.Addrs, ","), "one address only: Redis Cluster and Sentinel are not supported")
	}
	if len(r.Addrs) == 1 && r.Addr != "" {
		return newError("redis.addr", r.Addr, "give redis.addrs or redis.addr, not both")
	}
	if _, port, err := net.SplitHostPort(r.Address()); err != nil || port == "" {
		key := "redis.addrs"
		if r.Addr != "" {
			key = "redis.addr"
		}
		return newError(key, r.Address(), "expected host:port")
	}
	for key, d := range map[string]time.Duration{
		"redis.dialtimeout": r.DialTimeout, "redis.readtimeout": r.ReadTimeout,
		"redis.writetimeout": r.WriteTimeout, "redis.pooltimeout": r.PoolTimeout,
		"redis.connmaxidletime": r.ConnMaxIdleTime, "redis.connmaxlifetime": r.ConnMaxLifetime,
		"redis.pool.idletimeout": r.Pool.IdleTimeout,
	} {
		if err := nonNegative(key, d); err != nil {
			return err
		}
	}
	for key, n := range map[string]int{
		"redis.db": r.DB, "redis.maxretries": r.MaxRetries, "redis.poolsize": r.PoolSize,
		"redis.minidleconns": r.MinIdleConns, "redis.maxidleconns": r.MaxIdleConns,
		"redis.pool.maxidle": r.Pool.MaxIdle, "redis.pool.maxactive": r.Pool.MaxActive,
	} {
		if n < 0 {
			return newError(key, strconv.Itoa(n), "must not be negative")
		}
	}
	if (r.TLS.Certificate == "") != (r.TLS.Key == "") {
		return newError("redis.tls.certificate", r.TLS.Certificate, "give both redis.tls.certificate and redis.tls.key")
	}
	return nil
}
