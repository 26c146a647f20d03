package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Auth is client authentication: who may pull, push and use /api/v0. The
// htpasswd and token sections are distribution's; at most one may be set.
type Auth struct {
	// Htpasswd authenticates users with HTTP Basic against a bcrypt htpasswd file.
	Htpasswd *Htpasswd `yaml:"htpasswd"`
	// Token accepts bearer tokens from an external token service.
	Token *Token `yaml:"token"`
	// AnonymousPull lets clients without credentials pull (default true).
	// Pushes, deletes and /api/v0 always need an authenticated user.
	AnonymousPull *bool `yaml:"anonymouspull"`
	// Admins restricts /api/v0 to these users; empty: every authenticated user.
	Admins []string `yaml:"admins"`
}

// Htpasswd is distribution's auth.htpasswd.
type Htpasswd struct {
	Realm string `yaml:"realm"`
	Path  string `yaml:"path"`
}

// Token is distribution's auth.token.
type Token struct {
	Realm          string `yaml:"realm"`
	Service        string `yaml:"service"`
	Issuer         string `yaml:"issuer"`
	RootCertBundle string `yaml:"rootcertbundle"`
	// JWKS is a JSON Web Key Set file of trusted keys, instead of or beside
	// RootCertBundle.
	JWKS string `yaml:"jwks"`
	// SigningAlgorithms restricts the accepted JWS algorithms.
	SigningAlgorithms []string `yaml:"signingalgorithms"`
}

// Enabled reports whether any client authentication is configured.
func (a Auth) Enabled() bool { return a.Htpasswd != nil || a.Token != nil }

// Anonymous reports whether clients without credentials may pull.
func (a Auth) Anonymous() bool { return !a.Enabled() || a.AnonymousPull == nil || *a.AnonymousPull }

// Hosted configures repositories that live on this server and are pushed to.
type Hosted struct {
	// Namespaces are first path components whose repositories are hosted:
	// served from local storage only, never fetched upstream.
	Namespaces []string `yaml:"namespaces"`
	// RootDirectory holds the hosted repositories (default: "hosted" in
	// storage.filesystem.rootdirectory). It is primary data, not cache: back
	// it up. Eviction never touches it.
	RootDirectory string `yaml:"rootdirectory"`
}

// Root returns where hosted repositories live for a storage root.
func (h Hosted) Root(storageRoot string) string {
	if h.RootDirectory != "" {
		return h.RootDirectory
	}
	return filepath.Join(storageRoot, "hosted")
}

// IsHosted reports whether repository name lies in a hosted namespace.
func (h Hosted) IsHosted(name string) bool {
	first, _, _ := strings.Cut(name, "/")
	for _, ns := range h.Namespaces {
		if ns == first {
			return true
		}
	}
	return false
}

var componentRegexp = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

func (a *Auth) validate() error {
	switch {
	case a.Htpasswd != nil && a.Token != nil:
		return newError("auth", "", "set one of auth.htpasswd and auth.token, not both")
	case a.Htpasswd != nil:
		if a.Htpasswd.Realm == "" {
			return newError("auth.htpasswd.realm", "", "required: the realm clients are told to log in to")
		}
		if a.Htpasswd.Path == "" {
			return newError("auth.htpasswd.path", "", "required: the htpasswd file (bcrypt entries, htpasswd -Bc FILE USER)")
		}
		if _, err := os.Stat(a.Htpasswd.Path); err != nil {
			return &Error{Key: "auth.htpasswd.path", Value: a.Htpasswd.Path, Msg: "cannot read", Err: err}
		}
	case a.Token != nil:
		t := a.Token
		for key, v := range map[string]string{"realm": t.Realm, "service": t.Service, "issuer": t.Issuer} {
			if v == "" {
				return newError("auth.token."+key, "", "required")
			}
		}
		if t.RootCertBundle == "" && t.JWKS == "" {
			return newError("auth.token.rootcertbundle", "", "required: the certificates (or auth.token.jwks keys) tokens are signed with")
		}
		if err := validateURL("auth.token.realm", t.Realm); err != nil {
			return err
		}
		if t.RootCertBundle != "" {
			if _, err := readCerts("auth.token.rootcertbundle", t.RootCertBundle); err != nil {
				return err
			}
		}
	default:
		if len(a.Admins) > 0 {
			return newError("auth.admins", strings.Join(a.Admins, ","), "needs auth.htpasswd or auth.token")
		}
	}
	return nil
}

func (h *Hosted) validate() error {
	seen := map[string]bool{}
	for _, ns := range h.Namespaces {
		switch {
		case IsRegistryHost(ns):
			return newError("hosted.namespaces", ns, "looks like a registry host (a dot, a colon or localhost); hosted namespaces and upstream hosts must differ")
		case !componentRegexp.MatchString(ns):
			return newError("hosted.namespaces", ns, "not a repository path component (lower case letters, digits and . _ - separators)")
		case seen[ns]:
			return newError("hosted.namespaces", ns, "listed twice")
		}
		seen[ns] = true
	}
	return nil
}
