package storage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws" // registers "s3aws" (and "s3") with the factory
)

// S3DriverName is the factory name of distribution's s3-aws driver.
const S3DriverName = "s3aws"

// staleTemp is how old a temporary key must be before a store opening on the
// bucket removes it: older than any upload in progress, so that removing it
// cannot break another process's commit.
const staleTemp = time.Hour

// probeTimeout bounds the request that checks the bucket is reachable.
const probeTimeout = 30 * time.Second

// OpenS3 opens distribution's s3-aws driver with params (storage.s3 as
// configured: bucket, region, regionendpoint, accesskey, secretkey,
// rootdirectory, ...) and checks that the bucket answers. Errors never
// contain the secret key.
//
// Beware: with AWS_CA_BUNDLE set, aws-sdk-go v1 (under the driver) replaces
// http.DefaultClient's transport each time a driver opens, so nothing should
// use http.DefaultClient while drivers are being opened (the proxy's own
// clients have transports of their own).
func OpenS3(ctx context.Context, params map[string]any) (driver.StorageDriver, error) {
	d, err := factory.Create(ctx, S3DriverName, params)
	if err != nil {
		return nil, redact(fmt.Errorf("open s3 storage: %w", err), params)
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	// A List of the root needs the bucket and the credentials, changes nothing,
	// and is empty (no error) on a new bucket.
	if _, err := d.List(pctx, "/"); err != nil && !errors.As(err, new(driver.PathNotFoundError)) {
		return nil, redact(fmt.Errorf("s3 bucket %v: %w", params["bucket"], err), params)
	}
	return d, nil
}

// NewS3 opens a store on S3-compatible object storage (see OpenS3). Fills are
// spooled in the local directory spoolDir, verified, uploaded to a temporary
// key and moved into place. Temporary keys older than an hour, left by a
// process that died during an upload, are removed.
func NewS3(ctx context.Context, params map[string]any, spoolDir string) (*Store, error) {
	d, err := OpenS3(ctx, params)
	if err != nil {
		return nil, err
	}
	s, err := New(d, spoolDir)
	if err != nil {
		return nil, err
	}
	if _, err := s.SweepTemp(ctx, staleTemp); err != nil {
		return nil, redact(err, params)
	}
	return s, nil
}

// SweepTemp removes the temporary keys of uploads (under /_proxy/spool) older
// than age, and returns how many it removed. It is for drivers where a commit
// uploads; the filesystem store clears its spool when it opens.
func (s *Store) SweepTemp(ctx context.Context, age time.Duration) (int, error) {
	entries, err := s.d.List(ctx, spoolRoot)
	if err != nil {
		if errors.As(err, new(driver.PathNotFoundError)) {
			return 0, nil
		}
		return 0, fmt.Errorf("list temporary uploads: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(path.Base(e), "tmp-") {
			continue
		}
		fi, err := s.d.Stat(ctx, e)
		if err != nil || fi.IsDir() || time.Since(fi.ModTime()) < age {
			continue
		}
		if err := s.remove(ctx, e, "temporary upload "+path.Base(e)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// redact replaces the secret key (and session token) of params in err's text
// by "****": driver and SDK errors are logged, credentials never are.
func redact(err error, params map[string]any) error {
	msg := err.Error()
	changed := false
	for _, k := range []string{"secretkey", "sessiontoken"} {
		if v, ok := params[k].(string); ok && v != "" && strings.Contains(msg, v) {
			msg, changed = strings.ReplaceAll(msg, v, "****"), true
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}
