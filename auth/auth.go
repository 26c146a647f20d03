// Package auth decides, per HTTP request, who the client is and whether it may
// do what it asks: pull, push, delete, or use the /api/v0 admin API.
//
// Credentials are checked by distribution's access controllers (htpasswd with
// bcrypt, or bearer tokens from an external token service, as registry:2 does);
// this package adds the mirror's policy around them: anonymous pulls
// (auth.anonymouspull), refusals that tell the user how to configure auth, the
// admin list (auth.admins), logging of failed logins and slowing down of
// addresses that keep failing.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	dauth "github.com/distribution/distribution/v3/registry/auth"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // registers "htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"    // registers "token"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/config"
)

// Action is what a request wants to do with a repository or the registry.
type Action string

// The actions a request can need. Pull, Push and Delete are distribution's
// repository actions, passed to a token service as they are; a caller asks for
// what distribution's registry asks for: an upload or a manifest PUT needs Push
// and Pull (the client reads back what it wrote), a DELETE needs Delete.
const (
	Pull   Action = "pull"
	Push   Action = "push"
	Delete Action = "delete"
	// Admin is the /api/v0 API. With token auth the token must grant
	// registry:catalog:* (distribution's registry-wide right); with auth.admins
	// set, the user must also be listed.
	Admin Action = "admin"
)

// Access is one thing a request needs: an action on a repository. Repo is ""
// for registry-wide things: Pull with no Repo is the catalog (token scope
// registry:catalog:*), Admin is always registry-wide.
type Access struct {
	Repo   string
	Action Action
}

// Authorizer checks requests against the configured client auth. It is safe
// for concurrent use.
type Authorizer struct {
	ac        dauth.AccessController // nil: no client auth configured
	bearer    bool                   // ac is the token controller
	anonymous bool                   // pulls without credentials are allowed
	admins    map[string]bool        // empty: every authenticated user is an admin
	users     *htpasswdUsers         // the htpasswd file's user names; nil without htpasswd
	log       *logrus.Entry
	now       func() time.Time
	throttle  *throttle
	verified  verified // Basic credentials that passed recently
}

// Option configures an Authorizer.
type Option func(*Authorizer)

// WithLogger sets the logger for failed logins and refusals; the default is
// logrus's standard logger.
func WithLogger(l *logrus.Entry) Option { return func(a *Authorizer) { a.log = l } }

// WithClock sets the clock of the failed-login throttle (tests). Token expiry
// is checked by distribution's controller against the real clock.
func WithClock(now func() time.Time) Option { return func(a *Authorizer) { a.now = now } }

// New builds an Authorizer from the auth section of the config. With neither
// auth.htpasswd nor auth.token set, pulls are allowed and everything else is
// refused with a message saying how to configure auth.
func New(cfg config.Auth, opts ...Option) (*Authorizer, error) {
	a := &Authorizer{
		anonymous: cfg.Anonymous(),
		admins:    map[string]bool{},
		log:       logrus.NewEntry(logrus.StandardLogger()),
		now:       time.Now,
		throttle:  newThrottle(),
	}
	for _, o := range opts {
		o(a)
	}
	for _, name := range cfg.Admins {
		a.admins[name] = true
	}
	var err error
	switch {
	case cfg.Htpasswd != nil && cfg.Token != nil:
		return nil, errors.New("auth: set one of auth.htpasswd and auth.token, not both")
	case cfg.Htpasswd != nil:
		h := cfg.Htpasswd
		// distribution's controller creates a missing file with a generated
		// user and logs its password; a typo in the path must not do that.
		if _, err := os.Stat(h.Path); err != nil {
			return nil, fmt.Errorf("auth.htpasswd.path %q: %w", h.Path, err)
		}
		a.ac, err = dauth.GetAccessController("htpasswd", map[string]any{"realm": h.Realm, "path": h.Path})
		if err != nil {
			return nil, fmt.Errorf("auth.htpasswd: %w", err)
		}
		a.users = &htpasswdUsers{path: h.Path}
	case cfg.Token != nil:
		t := cfg.Token
		o := map[string]any{
			"realm": t.Realm, "service": t.Service, "issuer": t.Issuer,
			"rootcertbundle": t.RootCertBundle, "jwks": t.JWKS,
		}
		if len(t.SigningAlgorithms) > 0 {
			algs := make([]any, len(t.SigningAlgorithms))
			for i, alg := range t.SigningAlgorithms {
				algs[i] = alg
			}
			o["signingalgorithms"] = algs
		}
		a.ac, err = dauth.GetAccessController("token", o)
		if err != nil {
			return nil, fmt.Errorf("auth.token: %w", err)
		}
		a.bearer = true
	default:
		if len(cfg.Admins) > 0 {
			return nil, errors.New("auth.admins needs auth.htpasswd or auth.token")
		}
	}
	return a, nil
}

// Authorize returns the user a request is authenticated as ("" for anonymous)
// if it may have every access asked for, and an error otherwise. A refusal is
// an *Error that carries its status, headers and errcode body (see WriteError);
// any other error is a server fault (an unreadable htpasswd file, a bad Access).
//
// The rules:
//
//   - No auth configured: pulls (and the base endpoint) are allowed as ""; push,
//     delete and admin are refused with 401 UNAUTHORIZED and a message naming
//     the config keys to set, without a WWW-Authenticate challenge: there is
//     nothing to log in to, and a challenge would only make clients (containerd:
//     "no basic auth credentials") print their own error instead of ours, while
//     docker, podman and crane print the errcode message.
//   - Auth configured, no credentials (no Authorization header, or Basic with
//     an empty user name and password, which podman and skopeo send after a
//     Basic challenge when they have none): pull-only requests are allowed as "" when
//     auth.anonymouspull is true (the default); everything else gets a 401
//     challenge (Basic realm=..., or Bearer realm=,service=,scope= built from the
//     accesses).
//   - Credentials sent (any Authorization header) are always checked, even for
//     a pull anonymous clients could make: a bad password or an invalid or
//     expired token is a 401 challenge, never a silent anonymous pull. A valid
//     token that does not grant the access is 403 DENIED, with the Bearer
//     challenge (error="insufficient_scope", scope=...) in the header so that
//     clients which widen their token on a challenge (go-containerregistry)
//     can; except that under anonymous pull a valid token that lacks a pull
//     grant still pulls, as its subject: the token service knows nothing of the
//     cached repositories, and a logged-in user may pull what anyone may.
//   - Push, delete and admin need a user name: a token with an empty subject
//     (a token service's anonymous token) gets the 401 challenge too.
//   - Admin needs an authenticated user, in auth.admins when that is set
//     (otherwise 403 DENIED); with token auth the token must also grant
//     registry:catalog:*.
//   - An address with repeated failed logins gets 429 TOOMANYREQUESTS with
//     Retry-After for its credentialed requests until its lockout ends.
//
// The base endpoint GET /v2/ is Authorize(r) with no accesses. Without
// credentials it is allowed only when no auth is configured; with auth it is a
// 401 challenge, as distribution's registry answers, even with anonymous pulls
// on. Clients read that as "here is how to log in", not as a refusal: `docker
// login` pings /v2/ and sends credentials only after a 401 challenge (it would
// report success without checking anything after a 200), and with credentials
// /v2/ verifies them (200 or 401). go-containerregistry's transport (crane)
// pings /v2/ and on a 401 Basic challenge with anonymous credentials sends
// requests with no Authorization header, which pull; on a Bearer challenge it
// fetches a token from the realm without credentials, so anonymous crane pulls
// with token auth need a token service that issues anonymous tokens (Docker
// Hub's does). containerd does not ping: it answers a challenge on the request
// that got it, and an anonymous pull gets none.
func (a *Authorizer) Authorize(r *http.Request, access ...Access) (string, error) {
	pullOnly := len(access) > 0
	admin := false
	for _, x := range access {
		pullOnly = pullOnly && x.Action == Pull
		admin = admin || x.Action == Admin
	}
	// The common case, an anonymous pull, is decided before anything is built.
	if a.ac == nil && (pullOnly || len(access) == 0) {
		return "", nil
	}
	if a.ac != nil && pullOnly && a.anonymous && noCredentials(r) {
		return "", nil
	}
	want, err := toDistribution(access)
	if err != nil {
		return "", err
	}
	what := describe(access)
	if a.ac == nil {
		return "", refuseNoAuth(what)
	}
	if noCredentials(r) {
		return "", a.loginRequired(r, want, what)
	}

	remote := clientHost(r.RemoteAddr)
	key := throttleKey(r.RemoteAddr)
	log := a.log.WithField("remote", remote)
	if user, _, ok := r.BasicAuth(); ok {
		log = log.WithField("user", user)
	} else {
		// Only the scheme word: what follows it is the credential.
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if scheme = strings.ToLower(scheme); scheme != "bearer" && scheme != "basic" {
			scheme = "other"
		}
		log = log.WithField("scheme", scheme)
	}
	if wait := a.throttle.wait(key, a.now()); wait > 0 {
		log.WithField("retry_after", wait.String()).Warn("login refused: too many failed logins from this address")
		secs := int((wait + time.Second - 1) / time.Second)
		return "", refuse(http.StatusTooManyRequests, http.Header{"Retry-After": {strconv.Itoa(secs)}},
			errcode.ErrorCodeTooManyRequests, nil, "too many failed logins from this address: retry in %d s", secs)
	}

	header := r.Header.Get("Authorization")
	if !a.bearer {
		if user, ok := a.verified.get(header, a.now()); ok {
			a.throttle.reset(key)
			return a.permit(r, log, user, want, what, pullOnly, admin)
		}
	}
	grant, err := a.ac.Authorized(r, want...)
	var ch dauth.Challenge
	switch {
	case err == nil:
		a.throttle.reset(key)
		if !a.bearer {
			a.verified.put(header, grant.User.Name, a.now())
		}
		return a.permit(r, log, grant.User.Name, want, what, pullOnly, admin)
	case !errors.As(err, &ch):
		return "", fmt.Errorf("auth: checking credentials: %w", err)
	case !a.bearer || len(want) == 0:
		return "", a.failed(log, key, r, ch, err)
	}
	// A token that does not grant the access may still be valid: ask again
	// for nothing but a valid token.
	valid, verr := a.ac.Authorized(r)
	if verr != nil {
		return "", a.failed(log, key, r, ch, err)
	}
	a.throttle.reset(key)
	user := valid.User.Name
	if pullOnly && a.anonymous {
		return user, nil
	}
	if user == "" {
		return "", a.loginRequired(r, want, what)
	}
	log.WithField("user", user).Info("refused: token does not grant " + what)
	return "", refuse(http.StatusForbidden, challengeHeader(r, ch), errcode.ErrorCodeDenied, err,
		"token for %q does not grant %s", user, what)
}

// noCredentials reports whether r carries no credentials: no Authorization
// header, or Basic with an empty user name and an empty password. The latter
// is what containers/image (podman, skopeo, CRI-O) sends after a Basic
// challenge when it has no credentials for the registry; checked as a login it
// would fail, so that their anonymous pulls were refused and counted as failed
// logins.
func noCredentials(r *http.Request) bool {
	if r.Header.Get("Authorization") == "" {
		return true
	}
	user, pass, ok := r.BasicAuth()
	return ok && user == "" && pass == ""
}

// permit applies the policy to a user whose credentials were accepted: the
// empty name a token service gives anonymous tokens is anonymous, and the API
// is for admins.
func (a *Authorizer) permit(r *http.Request, log *logrus.Entry, user string, want []dauth.Access, what string, pullOnly, admin bool) (string, error) {
	if user == "" && len(want) > 0 && !(pullOnly && a.anonymous) {
		return "", a.loginRequired(r, want, what)
	}
	if admin && len(a.admins) > 0 && !a.admins[user] {
		log.WithField("user", user).Info("refused: not in auth.admins")
		return "", refuse(http.StatusForbidden, nil, errcode.ErrorCodeDenied, nil,
			"%s is for admins, and %q is not one", what, user)
	}
	return user, nil
}

// loginRequired is the 401 for a request that needs a user and has none: the
// controller's challenge for the request without credentials (Basic realm=,
// or Bearer realm=,service=,scope= without an error parameter).
func (a *Authorizer) loginRequired(r *http.Request, want []dauth.Access, what string) error {
	bare := r.Clone(r.Context())
	bare.Header.Del("Authorization")
	_, err := a.ac.Authorized(bare, want...)
	var ch dauth.Challenge
	if !errors.As(err, &ch) {
		return fmt.Errorf("auth: expected a challenge for a request without credentials, got %v", err)
	}
	msg := "authentication required"
	if len(want) > 0 {
		msg = what + " needs a login: docker login " + r.Host
	}
	return refuse(http.StatusUnauthorized, challengeHeader(bare, ch), errcode.ErrorCodeUnauthorized, nil, "%s", msg)
}

// failed records and logs a failed login and returns its 401 challenge.
func (a *Authorizer) failed(log *logrus.Entry, key string, r *http.Request, ch dauth.Challenge, cause error) error {
	lockout := a.throttle.fail(key, a.now())
	entry := log.WithField("reason", cause.Error())
	if lockout > 0 {
		entry = entry.WithField("lockout", lockout.String())
	}
	entry.Warn("failed login")
	msg := "invalid user name or password"
	if a.bearer {
		msg = "invalid or expired token"
	}
	return refuse(http.StatusUnauthorized, challengeHeader(r, ch), errcode.ErrorCodeUnauthorized, cause, "%s", msg)
}

// distribution maps an Access to the access distribution's controllers check.
func (x Access) distribution() (dauth.Access, error) {
	switch x.Action {
	case Pull, Push, Delete:
		if x.Repo == "" {
			if x.Action == Pull {
				return dauth.Access{Resource: dauth.Resource{Type: "registry", Name: "catalog"}, Action: "*"}, nil
			}
			return dauth.Access{}, fmt.Errorf("auth: %s needs a repository", x.Action)
		}
		return dauth.Access{Resource: dauth.Resource{Type: "repository", Name: x.Repo}, Action: string(x.Action)}, nil
	case Admin:
		return dauth.Access{Resource: dauth.Resource{Type: "registry", Name: "catalog"}, Action: "*"}, nil
	}
	return dauth.Access{}, fmt.Errorf("auth: unknown action %q", x.Action)
}

// describe names the most demanding access for messages: "push to dev/app".
func describe(access []Access) string {
	if len(access) == 0 {
		return "this registry"
	}
	x := access[0]
	for _, y := range access {
		if y.Action != Pull {
			x = y
			break
		}
	}
	switch {
	case x.Action == Admin:
		return "the /api/v0 API"
	case x.Action == Pull && x.Repo == "":
		return "the catalog"
	case x.Action == Pull:
		return "pull from " + x.Repo
	case x.Action == Push:
		return "push to " + x.Repo
	}
	return string(x.Action) + " in " + x.Repo
}

// challengeHeader returns the WWW-Authenticate header a controller's challenge sets.
func challengeHeader(r *http.Request, ch dauth.Challenge) http.Header {
	h := headerWriter{}
	ch.SetHeaders(r, h)
	return http.Header(h)
}

// headerWriter is a ResponseWriter that keeps only headers.
type headerWriter http.Header

func (h headerWriter) Header() http.Header       { return http.Header(h) }
func (headerWriter) Write(b []byte) (int, error) { return len(b), nil }
func (headerWriter) WriteHeader(int)             {}

// clientHost is the address part of a RemoteAddr, for logs.
func clientHost(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

type userKey struct{}

// WithUser returns a context that carries the authenticated user name, for
// handlers and push events further down.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// UserFrom returns the user WithUser stored in ctx, "" for anonymous or none.
func UserFrom(ctx context.Context) string {
	user, _ := ctx.Value(userKey{}).(string)
	return user
}

// Challenge returns the 401 that asks for a login to do access: for content
// that anonymous clients may not have even though Authorize let them (a private
// upstream while anonymous pulls are on).
func (a *Authorizer) Challenge(r *http.Request, access ...Access) error {
	want, err := toDistribution(access)
	if err != nil {
		return err
	}
	what := describe(access)
	if a.ac == nil {
		return refuseNoAuth(what)
	}
	return a.loginRequired(r, want, what)
}

// toDistribution converts accesses to the access controllers' form.
func toDistribution(access []Access) ([]dauth.Access, error) {
	want := make([]dauth.Access, 0, len(access))
	for _, x := range access {
		d, err := x.distribution()
		if err != nil {
			return nil, err
		}
		want = append(want, d)
	}
	return want, nil
}

// refuseNoAuth is the 401 for what needs a user on a server without client
// auth: there is nothing to log in to, so it says how to configure it.
func refuseNoAuth(what string) error {
	return refuse(http.StatusUnauthorized, nil, errcode.ErrorCodeUnauthorized, nil,
		"%s needs client auth, and this server has none: set auth.htpasswd (realm, path) or auth.token in its config", what)
}
