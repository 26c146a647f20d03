package mirror

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// Kind says which way a policy mirrors.
type Kind string

const (
	// Poll policies copy new and moved tags of a remote repository into a
	// hosted one.
	Poll Kind = "poll"
	// Push policies push tags pushed to a hosted repository on to a remote one.
	Push Kind = "push"
)

// masked stands for a stored password in API answers; sent back in a PUT it
// keeps the stored one.
const masked = "********"

// DockerHub is the remote host an empty remoteHost means.
const DockerHub = "https://registry-1.docker.io"

// Policy is a mirroring policy in DTR's JSON shape.
type Policy struct {
	ID                  string        `json:"id"`
	LocalRepository     string        `json:"localRepository"` // namespace/reponame on this server
	RemoteHost          string        `json:"remoteHost"`      // https://registry.example.com
	RemoteRepository    string        `json:"remoteRepository"`
	Username            string        `json:"username,omitempty"`
	Password            string        `json:"password,omitempty"` // a password or an access token
	RemoteCA            string        `json:"remoteCA,omitempty"` // PEM
	SkipTLSVerification bool          `json:"skipTLSVerification"`
	TagTemplate         string        `json:"tagTemplate"`
	Enabled             bool          `json:"enabled"`
	Rules               []Rule        `json:"rules"`
	LastStatus          *PolicyStatus `json:"lastStatus,omitempty"`
	CreatedAt           time.Time     `json:"createdAt"`
	UpdatedAt           time.Time     `json:"updatedAt"`
}

// PolicyStatus is how the last evaluation of a policy went.
type PolicyStatus struct {
	Code        string    `json:"code"` // SUCCESS or FAILED
	Detail      string    `json:"detail"`
	LastUpdated time.Time `json:"lastUpdated"`
}

// storedPolicy is a policy with what the engine remembers of it.
type storedPolicy struct {
	Kind   Kind   `json:"kind"`
	Policy Policy `json:"policy"`
	// Mirrored maps each remote tag a poll policy has seen to the digest it
	// had: a tag whose digest is unchanged costs one HEAD, not a copy.
	Mirrored map[string]string `json:"mirrored,omitempty"`
}

// Public returns p as the API shows it: the password masked.
func (p Policy) Public() Policy {
	if p.Password != "" {
		p.Password = masked
	}
	return p
}

// normalize fills defaults: Docker Hub when no host, %n when no template,
// https:// when the host has no scheme, library/ for a one-part Docker Hub name.
func (p *Policy) normalize() {
	p.RemoteHost = strings.TrimRight(strings.TrimSpace(p.RemoteHost), "/")
	if p.RemoteHost == "" {
		p.RemoteHost = DockerHub
	}
	if !strings.Contains(p.RemoteHost, "://") {
		p.RemoteHost = "https://" + p.RemoteHost
	}
	if p.TagTemplate == "" {
		p.TagTemplate = "%n"
	}
	if p.RemoteHost == DockerHub && p.RemoteRepository != "" && !strings.Contains(p.RemoteRepository, "/") {
		p.RemoteRepository = "library/" + p.RemoteRepository
	}
	if p.Rules == nil {
		p.Rules = []Rule{}
	}
}

// validate reports the first thing wrong with p, in words for the API user.
func (p *Policy) validate() error {
	u, err := url.Parse(p.RemoteHost)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || (u.Path != "" && u.Path != "/"):
		return fmt.Errorf("remoteHost %q: want a registry URL such as https://registry.example.com", p.RemoteHost)
	case p.RemoteRepository == "":
		return errors.New("remoteRepository is required")
	}
	if _, err := reference.WithName(p.RemoteRepository); err != nil {
		return fmt.Errorf("remoteRepository %q: %v", p.RemoteRepository, err)
	}
	if p.RemoteCA != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(p.RemoteCA)) {
			return errors.New("remoteCA holds no PEM certificate")
		}
	}
	if (p.Username == "") != (p.Password == "") {
		return errors.New("give username and password (or access token) together, or neither")
	}
	if _, err := ExpandTag(p.TagTemplate, "latest", "0123456789abcdef", time.Now()); err != nil {
		return err
	}
	for _, r := range p.Rules {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// ErrPolicyNotFound is returned for an unknown policy id.
var ErrPolicyNotFound = errors.New("mirroring policy not found")
