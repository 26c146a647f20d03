package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/config"
)

// Fail-fast defaults for the Redis client when the configuration leaves them
// unset: coordination that cannot answer quickly is worse than none.
const (
	defaultDialTimeout = 500 * time.Millisecond
	defaultIOTimeout   = 500 * time.Millisecond
	defaultPoolTimeout = time.Second
)

// NewRedisClient builds the go-redis client for distribution's redis section.
func NewRedisClient(c config.Redis) (*redis.Client, error) {
	opts := &redis.Options{
		Addr:            c.Address(),
		Username:        c.Username,
		Password:        c.Password,
		DB:              c.DB,
		ClientName:      c.ClientName,
		DialTimeout:     orDefault(c.DialTimeout, defaultDialTimeout),
		ReadTimeout:     orDefault(c.ReadTimeout, defaultIOTimeout),
		WriteTimeout:    orDefault(c.WriteTimeout, defaultIOTimeout),
		PoolTimeout:     orDefault(c.PoolTimeout, defaultPoolTimeout),
		MaxRetries:      -1, // go-redis: -1 is no retry; a failed lease is a degraded fetch
		PoolSize:        c.PoolSize,
		MinIdleConns:    c.MinIdleConns,
		MaxIdleConns:    c.MaxIdleConns,
		ConnMaxIdleTime: c.ConnMaxIdleTime,
		ConnMaxLifetime: c.ConnMaxLifetime,
	}
	if c.MaxRetries > 0 {
		opts.MaxRetries = c.MaxRetries
	}
	if opts.PoolSize == 0 && c.Pool.MaxActive > 0 {
		opts.PoolSize = c.Pool.MaxActive
	}
	if opts.MaxIdleConns == 0 && c.Pool.MaxIdle > 0 {
		opts.MaxIdleConns = c.Pool.MaxIdle
	}
	if opts.ConnMaxIdleTime == 0 && c.Pool.IdleTimeout > 0 {
		opts.ConnMaxIdleTime = c.Pool.IdleTimeout
	}
	if c.TLSEnabled() {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if len(c.TLS.RootCAs) > 0 {
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			for _, f := range c.TLS.RootCAs {
				pem, err := os.ReadFile(f)
				if err != nil {
					return nil, fmt.Errorf("redis.tls.rootcas: %w", err)
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("redis.tls.rootcas: %s: no PEM certificates", f)
				}
			}
			tc.RootCAs = pool
		}
		if c.TLS.Certificate != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.Certificate, c.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("redis.tls.certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts.TLSConfig = tc
	}
	return redis.NewClient(opts), nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// RouteClientLogs sends go-redis's own messages (dial failures while Redis is
// down, pool warnings) to log at debug level instead of the standard library's
// logger on stderr: the coordinator already logs each down/up change once.
// go-redis keeps one logger per process, so this is the process's choice.
func RouteClientLogs(log *logrus.Entry) { redis.SetLogger(redisLog{log}) }

type redisLog struct{ log *logrus.Entry }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debugf("redis client: "+format, v...)
}
