package config

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Storage driver names, as Storage.Driver returns them: the storage section's
// keys, which are also the names distribution's driver factory knows.
const (
	DriverFilesystem = "filesystem"
	DriverS3         = "s3"
	DriverGCS        = "gcs"
	DriverAzure      = "azure"
)

// objectDrivers are the object storage drivers, in the order Driver picks.
var objectDrivers = []string{DriverS3, DriverGCS, DriverAzure}

// params returns the parameters of the object driver name (nil when it is
// not configured).
func (s Storage) params(name string) map[string]any {
	switch name {
	case DriverS3:
		return s.S3
	case DriverGCS:
		return s.GCS
	case DriverAzure:
		return s.Azure
	}
	return nil
}

// Driver names the storage driver configured: DriverS3, DriverGCS or
// DriverAzure when that section is set, else DriverFilesystem.
func (s Storage) Driver() string {
	for _, name := range objectDrivers {
		if s.params(name) != nil {
			return name
		}
	}
	return DriverFilesystem
}

// ObjectStore reports whether the storage is an object store (s3, gcs or
// azure): the cache's state then lives in proxy.statedirectory.
func (s Storage) ObjectStore() bool { return s.Driver() != DriverFilesystem }

// Params returns the object driver's parameters as decoded (nil for the
// filesystem).
func (s Storage) Params() map[string]any { return s.params(s.Driver()) }

// DriverParams returns a copy of the object driver's parameters with
// rootdirectory set to root (the hosted registry's prefix, for example); nil
// for the filesystem.
func (s Storage) DriverParams(root string) map[string]any {
	p := maps.Clone(s.Params())
	if p == nil {
		return nil
	}
	p["rootdirectory"] = root
	return p
}

// ObjectRoot is the key prefix of the cache in the bucket or container: the
// object driver's rootdirectory, "" for the top.
func (s Storage) ObjectRoot() string {
	v, _ := s.Params()["rootdirectory"].(string)
	return v
}

// Describe names the storage for logs and messages, never with credentials:
// the filesystem root, s3://bucket/root (at endpoint), gs://bucket/root or
// azure://container/root at host.
func (s Storage) Describe() string {
	p := s.Params()
	switch s.Driver() {
	case DriverS3:
		return "s3://" + path.Join(fmt.Sprint(p["bucket"]), s.ObjectRoot()) + atHost(p["regionendpoint"])
	case DriverGCS:
		return "gs://" + path.Join(fmt.Sprint(p["bucket"]), s.ObjectRoot())
	case DriverAzure:
		return "azure://" + path.Join(fmt.Sprint(p["container"]), s.ObjectRoot()) + atHost(azureServiceURL(p))
	}
	return s.Filesystem.RootDirectory
}

// atHost is " at <host>" for an endpoint URL, "" without one.
func atHost(endpoint any) string {
	ep, _ := endpoint.(string)
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		return " at " + u.Host
	}
	return ""
}

// StateDir is the local directory of the eviction index, its lock and spool
// files: <rootdirectory>/_proxy on the filesystem, proxy.statedirectory with
// an object store.
func (c *Config) StateDir() string {
	if c.Storage.ObjectStore() {
		return c.Proxy.StateDirectory
	}
	return filepath.Join(c.Storage.Filesystem.RootDirectory, "_proxy")
}

// HostedObjectRoot is the key prefix of hosted repositories in the bucket:
// hosted.rootdirectory if set, else <rootdirectory>/hosted.
func (c *Config) HostedObjectRoot() string {
	if c.Hosted.RootDirectory != "" {
		return c.Hosted.RootDirectory
	}
	return path.Join("/", c.Storage.ObjectRoot(), "hosted")
}

// validateDriver checks that exactly one storage driver is configured and,
// for an object store, its parameters and the local state directory.
func (c *Config) validateDriver() error {
	s := &c.Storage
	name := s.Driver()
	if name == DriverFilesystem {
		if c.Proxy.StateDirectory != "" {
			return newError("proxy.statedirectory", c.Proxy.StateDirectory,
				"only used with an object store (storage.s3, gcs or azure); the filesystem driver keeps its state in <rootdirectory>/_proxy")
		}
		return nil
	}
	validate := map[string]func(map[string]any) error{DriverS3: validateS3, DriverGCS: validateGCS, DriverAzure: validateAzure}
	if err := validate[name](s.Params()); err != nil {
		return err
	}
	if c.Proxy.StateDirectory == "" {
		return newError("proxy.statedirectory", "", "required with storage."+name+": the local directory for the "+
			"eviction index and its lock, spool files of fills in progress and mirror.db")
	}
	if c.Hosted.RootDirectory != "" && !strings.HasPrefix(c.Hosted.RootDirectory, "/") {
		return newError("hosted.rootdirectory", c.Hosted.RootDirectory,
			`with storage.`+name+` it is a key prefix in the bucket and must start with "/"`)
	}
	return nil
}

// oneDriver refuses two object drivers, or storage.filesystem beside one
// (filesystemSet: the configuration gave it, beyond the default), and
// otherwise drops the default filesystem root when an object driver is
// configured.
func (s *Storage) oneDriver(filesystemSet bool) error {
	var set []string
	for _, name := range objectDrivers {
		if s.params(name) != nil {
			set = append(set, name)
		}
	}
	switch {
	case len(set) == 0:
		return nil
	case len(set) > 1:
		return newError("storage", "", "both "+set[0]+" and "+set[1]+" are configured; give exactly one storage driver")
	case filesystemSet:
		return newError("storage", "", "both filesystem and "+set[0]+" are configured; give exactly one storage driver "+
			"(REGISTRY_STORAGE_FILESYSTEM set to an empty value clears a filesystem section of the file)")
	}
	s.Filesystem = Filesystem{}
	return nil
}

// hasValue reports whether the mapping root has a non-null value at the key
// path segs.
func hasValue(root *yaml.Node, segs ...string) bool {
	cur := root
	for _, seg := range segs {
		if cur.Kind != yaml.MappingNode {
			return false
		}
		i := valueIndex(cur, seg)
		if i < 0 {
			return false
		}
		cur = deref(cur.Content[i])
	}
	return !isNull(cur)
}
