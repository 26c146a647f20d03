package config

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Storage driver names, as Storage.Driver returns them.
const (
	DriverFilesystem = "filesystem"
	DriverS3         = "s3"
)

// s3MinChunkSize is the s3-aws driver's smallest chunksize (S3's smallest
// multipart part).
const s3MinChunkSize = 5 << 20

// S3Keys are the parameters distribution's s3-aws driver reads (its
// FromParameters in v3.1.2), by type. storage.s3 accepts these and no others,
// so that a misspelt key stops the start instead of being ignored.
var S3Keys = map[string]string{
	"accesskey":                   "string",
	"secretkey":                   "string",
	"region":                      "string",
	"regionendpoint":              "string",
	"bucket":                      "string",
	"rootdirectory":               "string",
	"keyid":                       "string",
	"storageclass":                "string",
	"useragent":                   "string",
	"objectacl":                   "string",
	"loglevel":                    "string",
	"redirectendpoint":            "string",
	"forcepathstyle":              "bool",
	"encrypt":                     "bool",
	"secure":                      "bool",
	"skipverify":                  "bool",
	"v4auth":                      "bool",
	"usedualstack":                "bool",
	"accelerate":                  "bool",
	"usefipsendpoint":             "bool",
	"chunksize":                   "int",
	"multipartcopychunksize":      "int",
	"multipartcopymaxconcurrency": "int",
	"multipartcopythresholdsize":  "int",
}

// Driver names the storage driver configured: DriverS3 when storage.s3 is
// set, else DriverFilesystem.
func (s Storage) Driver() string {
	if s.S3 != nil {
		return DriverS3
	}
	return DriverFilesystem
}

// S3Params returns a copy of the s3 parameters with rootdirectory set to
// root (the hosted registry's prefix, for example). Values are as decoded.
func (s Storage) S3Params(root string) map[string]any {
	p := maps.Clone(s.S3)
	p["rootdirectory"] = root
	return p
}

// S3Root is the key prefix of the cache in the bucket: storage.s3.rootdirectory,
// "" for the bucket's top.
func (s Storage) S3Root() string {
	v, _ := s.S3["rootdirectory"].(string)
	return v
}

// Describe names the storage for logs and messages, never with credentials:
// the filesystem root, or s3://bucket/rootdirectory (at endpoint).
func (s Storage) Describe() string {
	if s.S3 == nil {
		return s.Filesystem.RootDirectory
	}
	d := "s3://" + path.Join(fmt.Sprint(s.S3["bucket"]), s.S3Root())
	if ep, _ := s.S3["regionendpoint"].(string); ep != "" {
		if u, err := url.Parse(ep); err == nil {
			d += " at " + u.Host
		}
	}
	return d
}

// StateDir is the local directory of the eviction index, its lock and spool
// files: <rootdirectory>/_proxy on the filesystem, proxy.statedirectory with s3.
func (c *Config) StateDir() string {
	if c.Storage.S3 != nil {
		return c.Proxy.StateDirectory
	}
	return filepath.Join(c.Storage.Filesystem.RootDirectory, "_proxy")
}

// HostedS3Root is the key prefix of hosted repositories in the bucket:
// hosted.rootdirectory if set, else <storage.s3.rootdirectory>/hosted.
func (c *Config) HostedS3Root() string {
	if c.Hosted.RootDirectory != "" {
		return c.Hosted.RootDirectory
	}
	return path.Join("/", c.Storage.S3Root(), "hosted")
}

// validateDriver checks that exactly one storage driver is configured and,
// for s3, its parameters and the local state directory.
func (c *Config) validateDriver() error {
	s := &c.Storage
	if s.S3 == nil {
		if c.Proxy.StateDirectory != "" {
			return newError("proxy.statedirectory", c.Proxy.StateDirectory,
				"only used with storage.s3; the filesystem driver keeps its state in <rootdirectory>/_proxy")
		}
		return nil
	}
	if err := validateS3(s.S3); err != nil {
		return err
	}
	if c.Proxy.StateDirectory == "" {
		return newError("proxy.statedirectory", "", "required with storage.s3: the local directory for the "+
			"eviction index and its lock, spool files of fills in progress and mirror.db")
	}
	if c.Hosted.RootDirectory != "" && !strings.HasPrefix(c.Hosted.RootDirectory, "/") {
		return newError("hosted.rootdirectory", c.Hosted.RootDirectory,
			`with storage.s3 it is a key prefix in the bucket and must start with "/"`)
	}
	return nil
}

// oneDriver refuses storage.filesystem beside storage.s3 (filesystemSet: the
// configuration gave it, beyond the default) and otherwise drops the default
// filesystem root when s3 is configured.
func (s *Storage) oneDriver(filesystemSet bool) error {
	if s.S3 == nil {
		return nil
	}
	if filesystemSet {
		return newError("storage", "", "both filesystem and s3 are configured; give exactly one storage driver "+
			"(REGISTRY_STORAGE_FILESYSTEM set to an empty value clears a filesystem section of the file)")
	}
	s.Filesystem = Filesystem{}
	return nil
}

// validateS3 checks the s3 driver parameters: known keys of the right type,
// a bucket, a region unless an endpoint is given. The driver checks the rest
// when it opens.
func validateS3(p map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(p)) {
		key := "storage.s3." + k
		typ, ok := S3Keys[k]
		if !ok {
			return newError(key, "", MsgUnknownKey)
		}
		if err := checkS3Value(key, typ, p[k]); err != nil {
			return err
		}
	}
	if b, _ := p["bucket"].(string); b == "" {
		return newError("storage.s3.bucket", "", "required")
	}
	ep, _ := p["regionendpoint"].(string)
	if r, _ := p["region"].(string); r == "" && ep == "" {
		return newError("storage.s3.region", "", "required unless storage.s3.regionendpoint is set")
	}
	if ep != "" {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return newError("storage.s3.regionendpoint", ep, "must be an http or https URL")
		}
	}
	if root, _ := p["rootdirectory"].(string); root != "" && !strings.HasPrefix(root, "/") {
		return newError("storage.s3.rootdirectory", root, `must start with "/"`)
	}
	if v, ok := p["chunksize"]; ok && v != nil {
		if n, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64); n < s3MinChunkSize {
			return newError("storage.s3.chunksize", fmt.Sprint(v), fmt.Sprintf("must be at least %d (5 MiB)", s3MinChunkSize))
		}
	}
	return nil
}

// checkS3Value checks that v has the type the driver expects; the driver
// accepts booleans and integers written as strings too (from the environment).
func checkS3Value(key, typ string, v any) error {
	if v == nil {
		return nil
	}
	shown := maskValue(key, fmt.Sprint(v))
	switch typ {
	case "string":
		if _, ok := v.(string); !ok {
			return &Error{Key: key, Value: shown, Msg: "expected a string"}
		}
	case "bool":
		switch b := v.(type) {
		case bool:
		case string:
			if _, err := strconv.ParseBool(b); err != nil {
				return &Error{Key: key, Value: shown, Msg: "expected true or false"}
			}
		default:
			return &Error{Key: key, Value: shown, Msg: "expected true or false"}
		}
	case "int":
		if _, err := strconv.ParseInt(fmt.Sprint(v), 10, 64); err != nil {
			return &Error{Key: key, Value: shown, Msg: "expected an integer"}
		}
	}
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
