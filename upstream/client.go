// Package upstream is the registry HTTP client of the pull-through cache: it
// talks the OCI distribution API to one upstream registry, handling token and
// Basic authentication, retries, redirects and size and time limits.
//
// Repository names given to Client methods are the final upstream names: the
// caller applies RepoName (Docker Hub's "library/" prefix) itself.
package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"
)

// dockerHubHost is where Docker Hub serves the registry API.
const dockerHubHost = "registry-1.docker.io"

// maxRedirects bounds how many redirects a request follows.
const maxRedirects = 10

// Client talks to one upstream registry. It is safe for concurrent use.
type Client struct {
	base      *url.URL // scheme and host of the upstream; no path
	opts      options
	log       *logrus.Entry
	http      *http.Client
	authHosts map[string]bool // lower-cased "host" or "host:port"
	auth      authenticator
	rate      rateLimit
	health    health
}

// New returns a client for the registry at remoteURL (e.g.
// https://registry-1.docker.io). The URL must be http or https with no path,
// query or user info; "docker.io" is rewritten to registry-1.docker.io, where
// Docker Hub serves the API.
func New(remoteURL string, opts ...Option) (*Client, error) {
	base, err := parseRemote(remoteURL)
	if err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	rt := o.transport
	if rt == nil {
		if rt, err = newTransport(o); err != nil {
			return nil, fmt.Errorf("upstream %s: %w", base.Host, err)
		}
	}
	c := &Client{
		base:      base,
		opts:      o,
		log:       o.logger.WithField("upstream", base.Host),
		authHosts: map[string]bool{},
	}
	for _, h := range o.authHosts {
		c.authHosts[strings.ToLower(strings.TrimSpace(h))] = true
	}
	c.http = &http.Client{Transport: rt, CheckRedirect: c.checkRedirect}
	c.rate.limit.Store(-1)
	c.rate.remaining.Store(-1)
	c.auth = authenticator{tokens: map[string]cachedToken{}, flight: &singleflight.Group{}}
	return c, nil
}

// parseRemote validates remoteURL and normalises its host.
func parseRemote(remoteURL string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(remoteURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("upstream url %q: %w", remoteURL, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("upstream url %q: scheme must be http or https", remoteURL)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("upstream url %q: missing host", remoteURL)
	case u.User != nil:
		return nil, errors.New("upstream url: user info not allowed, use WithCredentials")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("upstream url %q: must not have a path, query or fragment", remoteURL)
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		host = strings.ToLower(u.Hostname())
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	if host == "docker.io" {
		host = dockerHubHost
	}
	return &url.URL{Scheme: u.Scheme, Host: host}, nil
}

// newTransport builds the tuned transport: a keep-alive pool sized for many
// parallel blob pulls from one host, no transparent decompression (blobs must
// be stored byte for byte), and bounded connection and header waits.
func newTransport(o options) (*http.Transport, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.insecureSkipVerify} //nolint:gosec // opt-in
	if o.caFile != "" {
		pool, err := loadCAFile(o.caFile)
		if err != nil {
			return nil, err
		}
		tlsCfg.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: o.connectTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    o.connectTimeout,
		ResponseHeaderTimeout:  o.responseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
	}, nil
}

// loadCAFile returns the system root pool plus the PEM certificates in path.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificates", path)
	}
	return pool, nil
}

// Host returns host[:port] of the upstream, e.g. registry-1.docker.io.
func (c *Client) Host() string { return c.base.Host }

// IsDockerHub reports whether the upstream is Docker Hub.
func (c *Client) IsDockerHub() bool {
	switch c.base.Hostname() {
	case dockerHubHost, "index.docker.io", "docker.io":
		return true
	}
	return false
}

// RepoName maps a repository name as clients write it to the upstream's name:
// on Docker Hub, official images live under "library/" ("alpine" becomes
// "library/alpine"); other registries use names unchanged.
func (c *Client) RepoName(name string) string {
	if c.IsDockerHub() && !strings.Contains(name, "/") {
		return "library/" + name
	}
	return name
}
