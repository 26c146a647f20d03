//go:build !nogcs

package storage

// Distribution's gcs driver, registered as "gcs". It is most of the binary's
// size (Google's storage client brings gRPC and OpenTelemetry: about 27 MB of
// 85 MB); build with -tags nogcs to leave it out.
import _ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
