package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// MaxRetries is the largest accepted proxy.retries.
const MaxRetries = 10

// tlsVersions maps http.tls.minimumtls values to crypto/tls versions.
var tlsVersions = map[string]uint16{
	"tls1.0": tls.VersionTLS10,
	"tls1.1": tls.VersionTLS11,
	"tls1.2": tls.VersionTLS12,
	"tls1.3": tls.VersionTLS13,
}

// normalize canonicalises case-insensitive values after decoding.
func (c *Config) normalize() {
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	if c.Log.Level == "warning" {
		c.Log.Level = "warn"
	}
	c.Log.Formatter = strings.ToLower(strings.TrimSpace(c.Log.Formatter))
	c.HTTP.Net = strings.ToLower(c.HTTP.Net)
	c.HTTP.TLS.MinimumTLS = strings.ToLower(c.HTTP.TLS.MinimumTLS)
	c.Proxy.RemoteURL = strings.TrimRight(c.Proxy.RemoteURL, "/")
	c.Proxy.PeerURL = strings.TrimRight(c.Proxy.PeerURL, "/")
	for i, h := range c.Proxy.AuthHosts {
		c.Proxy.AuthHosts[i] = strings.ToLower(h)
	}
	c.normalizeUpstreams()
}

// Validate checks the values of c and returns an *Error about the first bad
// one. Parse calls it.
func (c *Config) Validate() error {
	checks := []func() error{
		c.validateVersion,
		c.Log.validate,
		c.validateDriver,
		c.Storage.validate,
		c.HTTP.validate,
		c.Proxy.validate,
		c.validateUpstreams,
		c.validateEviction,
		c.validatePins,
		c.Auth.validate,
		c.Hosted.validate,
		c.Mirror.validate,
		c.validateRedis,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateVersion() error {
	switch c.Version {
	case "0.1":
		return nil
	case "":
		return newError("version", "", `missing (must be "0.1")`)
	}
	return newError("version", c.Version, `unsupported version (must be "0.1")`)
}

func (l *Log) validate() error {
	switch strings.ToLower(l.Level) {
	case "error", "warn", "warning", "info", "debug":
	default:
		return newError("log.level", l.Level, "must be one of error, warn, info, debug")
	}
	switch strings.ToLower(l.Formatter) {
	case "text", "json":
		return nil
	case "logstash":
		return newError("log.formatter", l.Formatter, "logstash formatter is not supported (use text or json)")
	}
	return newError("log.formatter", l.Formatter, "must be text or json")
}

func (s *Storage) validate() error {
	if s.ObjectStore() {
		return nil // validateDriver checked it
	}
	if s.Filesystem.RootDirectory == "" {
		return newError("storage.filesystem.rootdirectory", "", "must not be empty")
	}
	if s.Filesystem.MaxThreads < 0 {
		return newError("storage.filesystem.maxthreads", strconv.Itoa(s.Filesystem.MaxThreads), "must not be negative")
	}
	return nil
}

func (h *HTTP) validate() error {
	if err := validateListen("http.addr", h.Net, h.Addr); err != nil {
		return err
	}
	if h.Host != "" {
		if err := validateURL("http.host", h.Host); err != nil {
			return err
		}
	}
	if h.Prefix != "" && !strings.HasPrefix(h.Prefix, "/") {
		return newError("http.prefix", h.Prefix, `must start with "/"`)
	}
	if err := nonNegative("http.draintimeout", h.DrainTimeout); err != nil {
		return err
	}
	if err := h.TLS.validate(); err != nil {
		return err
	}
	return h.Debug.validate()
}

// validateListen checks a listen address for the network netw.
func validateListen(key, netw, addr string) error {
	switch netw {
	case "", "tcp":
	case "unix":
		if addr == "" {
			return newError(key, "", "must be a socket path when http.net is unix")
		}
		return nil
	default:
		return newError("http.net", netw, "must be tcp or unix")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return newError(key, addr, `must be host:port (e.g. ":5000")`)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return newError(key, addr, "invalid port")
	}
	return nil
}

func (t *TLS) validate() error {
	switch {
	case t.Certificate != "" && t.Key == "":
		return newError("http.tls.key", "", "required when http.tls.certificate is set")
	case t.Key != "" && t.Certificate == "":
		return newError("http.tls.certificate", "", "required when http.tls.key is set")
	case len(t.ClientCAs) > 0 && t.Certificate == "":
		return newError("http.tls.clientcas", "", "requires http.tls.certificate and http.tls.key")
	}
	if _, ok := tlsVersions[strings.ToLower(t.MinimumTLS)]; !ok && t.MinimumTLS != "" {
		return newError("http.tls.minimumtls", t.MinimumTLS, "must be tls1.0, tls1.1, tls1.2 or tls1.3")
	}
	return nil
}

// Enabled reports whether the listener serves HTTPS.
func (t TLS) Enabled() bool { return t.Certificate != "" }

// MinVersion returns the crypto/tls version of MinimumTLS (TLS 1.2 when
// unset).
func (t TLS) MinVersion() uint16 {
	if v, ok := tlsVersions[strings.ToLower(t.MinimumTLS)]; ok {
		return v
	}
	return tls.VersionTLS12
}

func (d *Debug) validate() error {
	if d.Addr != "" {
		if err := validateListen("http.debug.addr", "tcp", d.Addr); err != nil {
			return err
		}
	}
	if d.Prometheus.Path != "" && !strings.HasPrefix(d.Prometheus.Path, "/") {
		return newError("http.debug.prometheus.path", d.Prometheus.Path, `must start with "/"`)
	}
	return nil
}

func (p *Proxy) validate() error {
	if err := validateURL("proxy.remoteurl", p.RemoteURL); err != nil {
		return err
	}
	if err := p.validateCredentials(); err != nil {
		return err
	}
	if err := validatePeerURL(p.PeerURL); err != nil {
		return err
	}
	if err := p.validateDurations(); err != nil {
		return err
	}
	if p.Retries < 0 || p.Retries > MaxRetries {
		return newError("proxy.retries", strconv.Itoa(p.Retries), fmt.Sprintf("must be between 0 and %d", MaxRetries))
	}
	if p.MaxManifestSize <= 0 {
		return newError("proxy.maxmanifestsize", strconv.FormatInt(int64(p.MaxManifestSize), 10), "must be positive")
	}
	if err := p.validateAuthHosts(); err != nil {
		return err
	}
	if p.CAFile != "" {
		if _, err := readCerts("proxy.cafile", p.CAFile); err != nil {
			return err
		}
	}
	return nil
}

func (p *Proxy) validateCredentials() error {
	switch {
	case p.Username != "" && p.Password == "":
		return newError("proxy.password", "", "required when proxy.username is set")
	case p.Password != "" && p.Username == "":
		return newError("proxy.username", "", "required when proxy.password is set")
	}
	return nil
}

func (p *Proxy) validateDurations() error {
	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"proxy.ttl", p.TTL},
		{"proxy.tagfreshness", p.TagFreshness},
		{"proxy.timeouts.connect", p.Timeouts.Connect},
		{"proxy.timeouts.responseheader", p.Timeouts.ResponseHeader},
		{"proxy.timeouts.stall", p.Timeouts.Stall},
	} {
		if err := nonNegative(d.key, d.val); err != nil {
			return err
		}
	}
	return nil
}

func (p *Proxy) validateAuthHosts() error {
	for i, h := range p.AuthHosts {
		u, err := url.Parse("//" + h)
		if h == "" || err != nil || u.Host != h || u.Hostname() == "" {
			key := fmt.Sprintf("proxy.authhosts[%d]", i)
			return newError(key, redactURL(h), "must be a host name or host:port")
		}
	}
	return nil
}

// RootCAs returns the system roots plus the certificates of CAFile, or nil
// (use the system roots) when CAFile is unset.
func (p Proxy) RootCAs() (*x509.CertPool, error) {
	if p.CAFile == "" {
		return nil, nil
	}
	certs, err := readCerts("proxy.cafile", p.CAFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// readCerts reads the PEM certificates of a CA file set by key.
func readCerts(key, path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Key: key, Value: path, Msg: "cannot read CA file", Err: err}
	}
	var certs []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, &Error{Key: key, Value: path, Msg: "invalid certificate in CA file", Err: err}
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, newError(key, path, "no PEM certificates found in CA file")
	}
	return certs, nil
}

// validateURL checks that s is an absolute http(s) URL with a host and
// without user info, query or fragment.
func validateURL(key, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return newError(key, redactURL(s), "invalid URL")
	}
	var msg string
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		msg = "must be an http or https URL"
	case u.Host == "" || u.Hostname() == "":
		msg = "must have a host"
	case u.User != nil:
		msg = "must not contain user info (use proxy.username and proxy.password)"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		msg = "must not have a query or fragment"
	default:
		return nil
	}
	return newError(key, redactURL(s), msg)
}

// redactURL hides a password embedded in a URL: the password of parsed
// user info is replaced by "xxxxx"; a value with an unparsed "@" is masked
// entirely.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	if strings.Contains(s, "@") {
		return masked
	}
	return s
}

// nonNegative checks that the duration d at key is not negative.
func nonNegative(key string, d time.Duration) error {
	if d < 0 {
		return newError(key, d.String(), "must not be negative")
	}
	return nil
}

// validateEviction: a size cap is enforced by deleting, which must be enabled.
func (c *Config) validateEviction() error {
	if c.Proxy.MaxSize < 0 {
		return newError("proxy.maxsize", c.Proxy.MaxSize.String(), "must not be negative")
	}
	if c.Proxy.MaxSize > 0 && !c.Storage.Delete.Enabled {
		return newError("proxy.maxsize", c.Proxy.MaxSize.String(), "needs storage.delete.enabled: true (a cap is kept by evicting)")
	}
	return nil
}

// validatePeerURL checks proxy.peerurl: empty (no peer streaming), or an
// http(s) URL with a host and nothing the peer route would not expect.
func validatePeerURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		return newError("proxy.peerurl", redactURL(s), "must be an http or https URL at which the other replicas reach this one")
	case u.Hostname() == "":
		return newError("proxy.peerurl", redactURL(s), "must have a host")
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return newError("proxy.peerurl", redactURL(s), "must not have user info, a query or a fragment")
	}
	return nil
}
