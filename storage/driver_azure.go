//go:build !noazure

package storage

// Distribution's azure driver, registered as "azure" (about 4 MB of the
// binary); build with -tags noazure to leave it out.
import _ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
