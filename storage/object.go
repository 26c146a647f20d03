package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws" // registers "s3" (and "s3aws"); gcs and azure: driver_*.go
)

// staleTemp is how old a temporary key must be before a store opening on the
// bucket removes it: older than any upload in progress, so that removing it
// cannot break another process's commit.
const staleTemp = time.Hour

// probeTimeout bounds the request that checks the bucket is reachable.
const probeTimeout = 30 * time.Second

// OpenDriver opens the object storage driver name of distribution ("s3",
// "gcs" or "azure", the storage section's key) with params as configured
// (bucket or container, credentials, rootdirectory, ...) and checks that the
// bucket answers. Errors never contain the credentials (see redact).
//
// Beware: with AWS_CA_BUNDLE set, aws-sdk-go v1 (under the s3 driver) replaces
// http.DefaultClient's transport each time a driver opens, so nothing should
// use http.DefaultClient while drivers are being opened (the proxy's own
// clients have transports of their own).
func OpenDriver(ctx context.Context, name string, params map[string]any) (driver.StorageDriver, error) {
	d, err := factory.Create(ctx, name, DriverParams(name, params))
	if errors.As(err, new(factory.InvalidStorageDriverError)) {
		return nil, fmt.Errorf("open %s storage: this binary was built without the %s driver (-tags no%s)", name, name, name)
	}
	if err != nil {
		return nil, redact(fmt.Errorf("open %s storage: %w", name, err), params)
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	// A List of the root needs the bucket and the credentials, changes nothing,
	// and is empty (no error) on a new bucket.
	if _, err := d.List(pctx, "/"); err != nil && !errors.As(err, new(driver.PathNotFoundError)) {
		return nil, redact(fmt.Errorf("%s %s: %w", name, bucketOf(params), err), params)
	}
	return d, nil
}

// NewObjectStore opens a store on object storage (see OpenDriver). Fills are
// spooled in the local directory spoolDir, verified, uploaded to a temporary
// key and moved into place. Temporary keys older than an hour, left by a
// process that died during an upload, are removed.
func NewObjectStore(ctx context.Context, name string, params map[string]any, spoolDir string) (*Store, error) {
	d, err := OpenDriver(ctx, name, params)
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

// DriverParams returns params as distribution's driver name takes them. Its
// gcs driver accepts credentials only as the map[any]any that distribution's
// own YAML parser makes, so a mapping decoded as map[string]any (by this
// proxy's configuration) is converted; everything else is passed as it is.
func DriverParams(name string, params map[string]any) map[string]any {
	creds, ok := params["credentials"].(map[string]any)
	if name != "gcs" || !ok {
		return params
	}
	p := maps.Clone(params)
	m := make(map[any]any, len(creds))
	for k, v := range creds {
		m[k] = v
	}
	p["credentials"] = m
	return p
}

// bucketOf names the bucket (s3, gcs) or container (azure) of params, for
// messages.
func bucketOf(params map[string]any) string {
	if c, ok := params["container"]; ok {
		return fmt.Sprintf("container %v", c)
	}
	return fmt.Sprintf("bucket %v", params["bucket"])
}
