// Package config loads the proxy's configuration.
//
// The file format follows distribution's (registry:2) config.yml so that a
// typical registry:2 proxy configuration parses as-is. Parsing is strict:
// unknown keys, unsupported sections and bad values are reported as *Error,
// naming the dotted key (for example "proxy.ttl") and, for environment
// overrides, the variable. Values of keys named password or secret are never
// included in error messages.
//
// Environment variables of the form REGISTRY_<SECTION>_<KEY>... override
// keys of the file, as in distribution: REGISTRY_PROXY_REMOTEURL sets
// proxy.remoteurl, REGISTRY_STORAGE_DELETE_ENABLED sets storage.delete.enabled.
package config

import (
	_ "embed" // for Default
	"errors"
	"os"
	"time"
)

// Default is the embedded default configuration (config/default.yml), used
// by Load when no path is given.
//
//go:embed default.yml
var Default []byte

// Config is the proxy's configuration.
type Config struct {
	// Version is the configuration format version; only "0.1" is accepted.
	Version string `yaml:"version"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Storage configures the local cache storage.
	Storage Storage `yaml:"storage"`
	// HTTP configures the listening server.
	HTTP HTTP `yaml:"http"`
	// Proxy configures the default upstream registry.
	Proxy Proxy `yaml:"proxy"`
	// Upstreams are further registries the mirror serves, each by its host.
	Upstreams []Upstream `yaml:"upstreams"`
	// Auth is client authentication.
	Auth Auth `yaml:"auth"`
	// Hosted lists the namespaces users push to.
	Hosted Hosted `yaml:"hosted"`
	// Mirror configures mirroring policies and jobs.
	Mirror Mirror `yaml:"mirror"`
	// Redis turns on cluster coordination between replicas sharing one
	// object store bucket (distribution's redis keys; see Redis).
	Redis Redis `yaml:"redis"`
	// UI configures the web console (/ui/).
	UI UI `yaml:"ui"`

	// Health is distribution's health section: accepted and ignored.
	Health map[string]any `yaml:"health"`
	// Reporting is distribution's reporting section: accepted and ignored.
	Reporting map[string]any `yaml:"reporting"`
	// Validation is distribution's validation section: accepted and ignored.
	Validation map[string]any `yaml:"validation"`
	// Compatibility is distribution's compatibility section: accepted and
	// ignored.
	Compatibility map[string]any `yaml:"compatibility"`
}

// Log configures logging.
type Log struct {
	// Level is one of error, warn, info (default) or debug. Parse lowercases
	// it and turns "warning" into "warn".
	Level string `yaml:"level"`
	// Formatter is text (default) or json.
	Formatter string `yaml:"formatter"`
	// Fields are added to every log line.
	Fields map[string]any `yaml:"fields"`
	// AccessLog configures the access log.
	AccessLog AccessLog `yaml:"accesslog"`
}

// AccessLog configures the access log.
type AccessLog struct {
	// Disabled turns the access log off.
	Disabled bool `yaml:"disabled"`
}

// Storage configures where cached content is stored: exactly one of the
// filesystem driver (the default) and distribution's object storage drivers
// s3 (s3-aws, for S3-compatible object storage), gcs and azure. Other
// distribution drivers (inmemory, ...) are rejected.
type Storage struct {
	// Filesystem configures the filesystem driver.
	Filesystem Filesystem `yaml:"filesystem"`
	// S3 holds the parameters of distribution's s3-aws driver, passed to it as
	// they are (bucket, region, regionendpoint, accesskey, secretkey,
	// rootdirectory, secure, v4auth, chunksize, forcepathstyle, skipverify,
	// ...; see S3Keys). Nil when the filesystem driver is used. With it,
	// proxy.statedirectory is required.
	S3 map[string]any `yaml:"s3"`
	// GCS holds the parameters of distribution's gcs driver (bucket,
	// rootdirectory, keyfile or credentials, chunksize, ...; see GCSKeys).
	GCS map[string]any `yaml:"gcs"`
	// Azure holds the parameters of distribution's azure driver (accountname,
	// accountkey, container, credentials, serviceurl, rootdirectory, ...; see
	// AzureKeys).
	Azure map[string]any `yaml:"azure"`
	// Delete configures deletion through the API.
	Delete Delete `yaml:"delete"`
	// Cache is accepted for compatibility and ignored.
	Cache StorageCache `yaml:"cache"`
	// Maintenance: uploadpurging applies to hosted repositories; the rest is
	// accepted for compatibility and ignored.
	Maintenance Maintenance `yaml:"maintenance"`
	// Redirect says whether blob hits may be answered with a redirect to the
	// storage backend (a presigned URL on s3, a signed URL on gcs, a SAS URL
	// on azure).
	Redirect Redirect `yaml:"redirect"`
}

// Filesystem configures the filesystem storage driver.
type Filesystem struct {
	// RootDirectory is where cached content is stored (default ./data).
	RootDirectory string `yaml:"rootdirectory"`
	// MaxThreads limits concurrent filesystem operations (0: driver default).
	MaxThreads int `yaml:"maxthreads"`
}

// Delete configures deletion through the API.
type Delete struct {
	// Enabled allows DELETE requests (default false).
	Enabled bool `yaml:"enabled"`
}

// StorageCache is distribution's storage.cache section (ignored).
type StorageCache struct {
	// BlobDescriptor names the blob descriptor cache (ignored).
	BlobDescriptor string `yaml:"blobdescriptor"`
	// BlobDescriptorSize is the size of the blob descriptor cache (ignored).
	BlobDescriptorSize int `yaml:"blobdescriptorsize"`
}

// Maintenance is distribution's storage.maintenance section.
type Maintenance struct {
	// UploadPurging removes abandoned uploads to hosted repositories.
	UploadPurging UploadPurging `yaml:"uploadpurging"`
	// ReadOnly configures read-only mode (ignored).
	ReadOnly ReadOnly `yaml:"readonly"`
}

// UploadPurging is storage.maintenance.uploadpurging: upload sessions older
// than Age are removed every Interval (defaults: enabled, 168h, 24h).
type UploadPurging struct {
	Enabled  *bool         `yaml:"enabled"`
	Age      time.Duration `yaml:"age"`
	Interval time.Duration `yaml:"interval"`
	DryRun   bool          `yaml:"dryrun"`
}

// ReadOnly is storage.maintenance.readonly (ignored).
type ReadOnly struct {
	Enabled bool `yaml:"enabled"`
}

// Redirect is storage.redirect.
type Redirect struct {
	// Disable turns off redirects to the storage backend: blob hits are then
	// streamed through the proxy. As in distribution, redirects are on by
	// default; only an object store (s3, gcs, azure) does.
	Disable bool `yaml:"disable"`
}

// HTTP configures the listening server.
type HTTP struct {
	// Addr is the listen address (default ":5000"), a socket path when Net
	// is "unix".
	Addr string `yaml:"addr"`
	// Net is "tcp" (default) or "unix".
	Net string `yaml:"net"`
	// Host is the externally reachable base URL, if set.
	Host string `yaml:"host"`
	// Prefix is a path prefix under which the API is served, if set.
	Prefix string `yaml:"prefix"`
	// Secret is a random secret (for signing state); never logged.
	Secret string `yaml:"secret"`
	// RelativeURLs makes Location headers relative.
	RelativeURLs bool `yaml:"relativeurls"`
	// DrainTimeout is how long to wait for requests on shutdown (default 30s).
	DrainTimeout time.Duration `yaml:"draintimeout"`
	// Headers are added to every response.
	Headers map[string][]string `yaml:"headers"`
	// TLS configures HTTPS.
	TLS TLS `yaml:"tls"`
	// Debug configures the debug server.
	Debug Debug `yaml:"debug"`
	// HTTP2 configures HTTP/2.
	HTTP2 HTTP2 `yaml:"http2"`
	// H2C configures cleartext HTTP/2.
	H2C H2C `yaml:"h2c"`
}

// TLS configures HTTPS on the listener.
type TLS struct {
	// Certificate is the PEM certificate file; set together with Key.
	Certificate string `yaml:"certificate"`
	// Key is the PEM private key file; set together with Certificate.
	Key string `yaml:"key"`
	// ClientCAs are PEM files of CAs for client certificates.
	ClientCAs []string `yaml:"clientcas"`
	// MinimumTLS is tls1.0, tls1.1, tls1.2 (default) or tls1.3.
	MinimumTLS string `yaml:"minimumtls"`
}

// Debug configures the debug server.
type Debug struct {
	// Addr is the debug listen address; empty disables the debug server.
	Addr string `yaml:"addr"`
	// Prometheus configures the metrics endpoint on the debug server.
	Prometheus Prometheus `yaml:"prometheus"`
}

// Prometheus configures the metrics endpoint.
type Prometheus struct {
	Enabled bool   `yaml:"enabled"`
	Path    string `yaml:"path"`
}

// HTTP2 configures HTTP/2.
type HTTP2 struct {
	Disabled bool `yaml:"disabled"`
}

// H2C configures cleartext HTTP/2.
type H2C struct {
	Enabled bool `yaml:"enabled"`
}

// Proxy configures the upstream registry.
type Proxy struct {
	// RemoteURL is the upstream registry (default
	// "https://registry-1.docker.io").
	RemoteURL string `yaml:"remoteurl"`
	// Username and Password authenticate to the upstream; both or neither.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TTL is how long cached content is kept (default 168h; 0: forever).
	TTL time.Duration `yaml:"ttl"`
	// TagFreshness is how long a cached tag is served without asking the
	// upstream (default 0: always revalidate).
	TagFreshness time.Duration `yaml:"tagfreshness"`
	// CAFile is a PEM bundle of CAs trusted for the upstream, in addition to
	// the system roots.
	CAFile string `yaml:"cafile"`
	// InsecureSkipVerify disables upstream certificate verification.
	InsecureSkipVerify bool `yaml:"insecureskipverify"`
	// AuthHosts are extra hosts (host or host:port) credentials may be sent
	// to, such as a token realm on another domain.
	AuthHosts []string `yaml:"authhosts"`
	// MaxManifestSize is the largest manifest accepted (default 4MiB).
	MaxManifestSize ByteSize `yaml:"maxmanifestsize"`
	// MaxSize caps the cache (e.g. 50GiB): least recently used content is
	// evicted down to 90% of it. 0: no cap. Needs storage.delete.enabled.
	MaxSize ByteSize `yaml:"maxsize"`
	// Pin lists what eviction never removes, by TTL or by MaxSize: a repository
	// as stored ("library/alpine", "ghcr.io/owner/app") or repo:tag, each part
	// a path.Match pattern ("library/*", "team/app:v1.*"). A repo:tag entry
	// keeps the matching tags and all manifests and layers of the repository;
	// its other tags may go (see scheduler.Pinned).
	Pin []string `yaml:"pin"`
	// Timeouts bound upstream requests.
	Timeouts Timeouts `yaml:"timeouts"`
	// Retries is how often a failed upstream request is retried (0..10,
	// default 3).
	Retries int `yaml:"retries"`
	// StateDirectory is a local directory for what cannot live on an object
	// store: the eviction index (scheduler.db, whose lock says which process
	// owns the cache), spool files of fills in progress and the mirroring
	// engine's mirror.db. Required with an object store (storage.s3, gcs or
	// azure); with the filesystem driver this state lives in
	// <rootdirectory>/_proxy and the key must be unset.
	StateDirectory string `yaml:"statedirectory"`
	// PeerURL is the http(s) base URL at which the other replicas of a
	// cluster reach this one (e.g. http://10.0.0.5:5000): a replica that
	// waits for another's fill of a blob streams it from there. Needs redis
	// and http.secret (the same on every replica); without either, waiting
	// replicas get the blob only once it is committed.
	PeerURL string `yaml:"peerurl"`
}

// Upstream is a further registry served by the mirror. Clients reach it with
// containerd's ns=<host> parameter or with the host as the first path component
// (mirror:5000/ghcr.io/owner/app). Timeouts, retries and limits are proxy's.
type Upstream struct {
	// Host is the registry name clients use: ghcr.io, quay.io, localhost:5001.
	Host string `yaml:"host"`
	// RemoteURL is where its API is served (default https://<host>).
	RemoteURL string `yaml:"remoteurl"`
	// Username with Password or PasswordFile authenticate to it.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"passwordfile"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"passwordenv"`
	// CA is a PEM bundle of CAs trusted for it, beside the system roots.
	CA string `yaml:"ca"`
	// InsecureSkipVerify disables its certificate verification.
	InsecureSkipVerify bool `yaml:"insecureskipverify"`
	// AuthHosts are extra hosts its credentials may be sent to.
	AuthHosts []string `yaml:"authhosts"`
	// TTL is how long its content is kept (unset or 0: proxy.ttl).
	TTL time.Duration `yaml:"ttl"`
	// Public lets anonymous clients pull its content when auth.anonymouspull
	// is on. Default: true without credentials, false with them.
	Public *bool `yaml:"public"`
}

// IsPublic reports whether anonymous clients may pull u's content.
func (u Upstream) IsPublic() bool {
	if u.Public != nil {
		return *u.Public
	}
	return u.Username == ""
}

// Timeouts bound upstream requests; 0 means no limit.
type Timeouts struct {
	// Connect bounds dialing and the TLS handshake (default 10s).
	Connect time.Duration `yaml:"connect"`
	// ResponseHeader bounds waiting for response headers (default 30s).
	ResponseHeader time.Duration `yaml:"responseheader"`
	// Stall aborts a body that delivers no bytes for this long (default 60s).
	Stall time.Duration `yaml:"stall"`
}

// Defaults of keys the configuration leaves unset.
const (
	DefaultRootDirectory   = "./data"
	DefaultAddr            = ":5000"
	DefaultRemoteURL       = "https://registry-1.docker.io"
	DefaultTTL             = 168 * time.Hour
	DefaultDrainTimeout    = 30 * time.Second
	DefaultMaxManifestSize = 4 << 20
	DefaultRetries         = 3
)

// defaults returns a Config holding the default of every key; decoding
// overwrites only the keys present.
func defaults() *Config {
	return &Config{
		Log:     Log{Level: "info", Formatter: "text"},
		Storage: Storage{Filesystem: Filesystem{RootDirectory: DefaultRootDirectory}},
		HTTP:    HTTP{Addr: DefaultAddr, Net: "tcp", DrainTimeout: DefaultDrainTimeout},
		Proxy: Proxy{
			RemoteURL:       DefaultRemoteURL,
			TTL:             DefaultTTL,
			MaxManifestSize: DefaultMaxManifestSize,
			Timeouts: Timeouts{
				Connect:        10 * time.Second,
				ResponseHeader: 30 * time.Second,
				Stall:          60 * time.Second,
			},
			Retries: DefaultRetries,
		},
	}
}

// Load reads the configuration file at path (the embedded Default when path
// is empty) and parses it with Parse. Errors are *Error.
func Load(path string, environ []string) (*Config, error) {
	if path == "" {
		return Parse(Default, environ)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Msg: "cannot read configuration file", Err: err}
	}
	return Parse(data, environ)
}

// Parse parses a YAML configuration, applies the REGISTRY_* overrides found
// in environ (entries "NAME=value", as from os.Environ), fills in defaults
// and validates the result. Errors are *Error.
func Parse(data []byte, environ []string) (*Config, error) {
	root, err := parseYAML(data)
	if err != nil {
		return nil, err
	}
	envKeys, err := applyEnv(root, environ)
	if err != nil {
		return nil, err
	}
	cfg := defaults()
	if err := decodeConfig(root, cfg); err != nil {
		return nil, attributeEnv(err, envKeys)
	}
	if err := cfg.Storage.oneDriver(hasValue(root, "storage", "filesystem")); err != nil {
		return nil, attributeEnv(err, envKeys)
	}
	cfg.normalize()
	if err := cfg.passwordsFromEnv(environ); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, attributeEnv(err, envKeys)
	}
	return cfg, nil
}

// attributeEnv records in err which environment variable set the key it is
// about, if any.
func attributeEnv(err error, envKeys map[string]string) error {
	var e *Error
	if !errors.As(err, &e) || e.Env != "" {
		return err
	}
	for key := e.Key; key != ""; key = parentKey(key) {
		if name, ok := envKeys[key]; ok {
			e.Env = name
			break
		}
	}
	return err
}
