package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// dockerHubHosts are the names Docker Hub answers to.
var dockerHubHosts = []string{"docker.io", "index.docker.io", "registry-1.docker.io"}

// IsDockerHub reports whether a registry host is Docker Hub.
func IsDockerHub(host string) bool {
	for _, h := range dockerHubHosts {
		if strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}

// DefaultHosts returns the registry hosts the default upstream answers to by
// name: Docker Hub's aliases when it is Docker Hub, else its own host.
func (p Proxy) DefaultHosts() []string {
	u, err := url.Parse(p.RemoteURL)
	if err != nil {
		return nil
	}
	if IsDockerHub(u.Hostname()) {
		return append([]string(nil), dockerHubHosts...)
	}
	return []string{strings.ToLower(u.Host)}
}

// normalizeUpstreams fills defaults: remoteurl https://<host>, the proxy's TTL.
func (c *Config) normalizeUpstreams() {
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		u.Host = strings.ToLower(strings.TrimSpace(u.Host))
		if u.RemoteURL == "" && u.Host != "" {
			u.RemoteURL = "https://" + u.Host
		}
		u.RemoteURL = strings.TrimRight(u.RemoteURL, "/")
		if u.TTL == 0 {
			u.TTL = c.Proxy.TTL
		}
	}
}

// passwordsFromEnv fills the password of every upstream with passwordenv from
// the environment it names.
func (c *Config) passwordsFromEnv(environ []string) error {
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if u.PasswordEnv == "" {
			continue
		}
		key := fmt.Sprintf("upstreams[%d].passwordenv", i)
		if u.Password != "" || u.PasswordFile != "" {
			return newError(key, u.PasswordEnv, "set one of password, passwordfile and passwordenv")
		}
		for _, kv := range environ {
			if name, value, ok := strings.Cut(kv, "="); ok && name == u.PasswordEnv {
				u.Password = value
			}
		}
		if u.Password == "" {
			return newError(key, u.PasswordEnv, "environment variable is not set or empty")
		}
	}
	return nil
}

// validateUpstreams checks every upstream and that no host is claimed twice.
func (c *Config) validateUpstreams() error {
	seen := map[string]string{}
	for _, h := range c.Proxy.DefaultHosts() {
		seen[h] = "proxy.remoteurl"
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		key := fmt.Sprintf("upstreams[%d]", i)
		if err := u.validate(key); err != nil {
			return err
		}
		if other, dup := seen[u.Host]; dup {
			return newError(key+".host", u.Host, "already served by "+other)
		}
		seen[u.Host] = key
	}
	return nil
}

func (u *Upstream) validate(key string) error {
	switch {
	case u.Host == "":
		return newError(key+".host", "", "required: the registry name clients use, e.g. ghcr.io")
	case !IsRegistryHost(u.Host):
		return newError(key+".host", u.Host, "must look like a registry host (a dot, a port or localhost)")
	case strings.ContainsAny(u.Host, "/ "):
		return newError(key+".host", u.Host, "must be a host or host:port")
	}
	if err := validateURL(key+".remoteurl", u.RemoteURL); err != nil {
		return err
	}
	if u.Password != "" && u.PasswordFile != "" {
		return newError(key+".passwordfile", u.PasswordFile, "set password or passwordfile, not both")
	}
	if u.PasswordFile != "" {
		b, err := os.ReadFile(u.PasswordFile)
		if err != nil {
			return &Error{Key: key + ".passwordfile", Value: u.PasswordFile, Msg: "cannot read", Err: err}
		}
		u.Password = strings.TrimRight(string(b), "\r\n")
	}
	switch {
	case u.Username != "" && u.Password == "":
		return newError(key+".password", "", "required when username is set")
	case u.Password != "" && u.Username == "":
		return newError(key+".username", "", "required when a password is set")
	}
	if u.CA != "" {
		if _, err := readCerts(key+".ca", u.CA); err != nil {
			return err
		}
	}
	return nonNegative(key+".ttl", u.TTL)
}

// IsRegistryHost reports whether a first path component names a registry, as
// the reference grammar reads it: with a dot or a port, or localhost. Routing
// (serve and warm) and validation (upstream hosts, hosted namespaces) share it.
func IsRegistryHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}
