package upstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/publicsuffix"
	"golang.org/x/sync/singleflight"
)

const (
	// defaultTokenLifetime applies when a token response has no expires_in.
	defaultTokenLifetime = 60 * time.Second
	// maxTokenLifetime caps expires_in so absurd values cannot overflow.
	maxTokenLifetime = 24 * time.Hour
	// tokenFetchTimeout bounds a shared token fetch, which runs detached
	// from the context of the request that started it.
	tokenFetchTimeout = time.Minute
	// maxTokenBody bounds a token response.
	maxTokenBody = 1 << 20
	// maxCachedTokens bounds the token cache (one entry per repository).
	maxCachedTokens = 4096
)

// authenticator holds what the Client learnt about the upstream's
// authentication: the last challenge seen and the bearer tokens per
// repository.
type authenticator struct {
	mu     sync.Mutex
	state  *authState
	tokens map[string]cachedToken // key: tokenKey
	flight *singleflight.Group    // one token fetch per key at a time
}

// authState is the scheme an upstream asked for, with its token realm.
type authState struct {
	scheme  string // "bearer" or "basic"
	realm   string // bearer only
	service string // bearer only
}

type cachedToken struct {
	token     string
	refreshAt time.Time // shortly before the token expires
}

func (a *authenticator) current() *authState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

func (a *authenticator) setState(s *authState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.state = s
}

// cached returns the token for key unless it is due for refresh.
func (a *authenticator) cached(key string, now time.Time) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tokens[key]
	if !ok || !now.Before(t.refreshAt) {
		return "", false
	}
	return t.token, true
}

// drop forgets the token for key if it is still bad (the upstream rejected
// it); a token another request already refreshed is kept.
func (a *authenticator) drop(key, bad string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.tokens[key]; ok && bad != "" && t.token == bad {
		delete(a.tokens, key)
	}
}

// store caches t, first evicting stale entries when the cache is full.
func (a *authenticator) store(key string, t cachedToken, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.tokens) >= maxCachedTokens {
		for k, old := range a.tokens {
			if !now.Before(old.refreshAt) || len(a.tokens) >= maxCachedTokens {
				delete(a.tokens, k)
			}
		}
	}
	a.tokens[key] = t
}

// authorization returns the Authorization header for a request on repo
// according to the last challenge seen, or "" when none is known (the first
// request then goes out anonymously and learns the challenge from its 401).
func (c *Client) authorization(ctx context.Context, repo string) (string, error) {
	st := c.auth.current()
	switch {
	case st == nil:
		return "", nil
	case st.scheme == "basic":
		return c.basicHeader(), nil
	}
	tok, err := c.token(ctx, st, repo, "", "")
	if err != nil {
		return "", err
	}
	return "Bearer " + tok, nil
}

// reauthorize handles a 401 whose request carried sent as Authorization. It
// returns the Authorization for the single retry, or ok=false when no
// challenge offers anything better than what was sent.
func (c *Client) reauthorize(ctx context.Context, repo string, h http.Header, sent string) (authz string, ok bool, err error) {
	var chs []challenge
	for _, v := range h.Values("Www-Authenticate") {
		chs = append(chs, parseChallenges(v)...)
	}
	if st, scope, found := bearerState(chs); found {
		c.auth.setState(st)
		tok, err := c.token(ctx, st, repo, scope, strings.TrimPrefix(sent, "Bearer "))
		if err != nil {
			return "", false, err
		}
		return "Bearer " + tok, true, nil
	}
	for _, ch := range chs {
		if ch.Scheme == "basic" && c.hasCredentials() && sent != c.basicHeader() {
			c.auth.setState(&authState{scheme: "basic"})
			return c.basicHeader(), true, nil
		}
	}
	return "", false, nil
}

// observe records the scheme of a 401 without acting on it (Ping).
func (c *Client) observe(h http.Header) {
	var chs []challenge
	for _, v := range h.Values("Www-Authenticate") {
		chs = append(chs, parseChallenges(v)...)
	}
	if st, _, found := bearerState(chs); found {
		c.auth.setState(st)
		return
	}
	for _, ch := range chs {
		if ch.Scheme == "basic" && c.hasCredentials() {
			c.auth.setState(&authState{scheme: "basic"})
			return
		}
	}
}

// bearerState picks the first usable Bearer challenge: one whose realm is an
// absolute http(s) URL.
func bearerState(chs []challenge) (st *authState, scope string, ok bool) {
	for _, ch := range chs {
		if ch.Scheme != "bearer" {
			continue
		}
		u, err := url.Parse(ch.Params["realm"])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		return &authState{scheme: "bearer", realm: u.String(), service: ch.Params["service"]}, ch.Params["scope"], true
	}
	return nil, "", false
}

func (c *Client) hasCredentials() bool { return c.opts.username != "" || c.opts.password != "" }

// basicHeader returns the Basic Authorization value, "" without credentials.
func (c *Client) basicHeader() string {
	if !c.hasCredentials() {
		return ""
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.opts.username+":"+c.opts.password))
}

// token returns a bearer token for repo from the cache or the realm. bad is a
// token the upstream just rejected: it is never returned from the cache.
// Concurrent callers for the same realm, service and repository share one
// fetch, which runs detached from any single caller's cancellation.
func (c *Client) token(ctx context.Context, st *authState, repo, scope, bad string) (string, error) {
	key := st.realm + "\x00" + st.service + "\x00" + repo
	if t, ok := c.auth.cached(key, c.opts.now()); ok && t != bad {
		return t, nil
	}
	c.auth.drop(key, bad)
	ch := c.auth.flight.DoChan(key, func() (any, error) {
		if t, ok := c.auth.cached(key, c.opts.now()); ok && t != bad {
			return t, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenFetchTimeout)
		defer cancel()
		t, err := c.fetchToken(fctx, st, repo, scope)
		if err != nil {
			return "", err
		}
		c.auth.store(key, t, c.opts.now())
		return t.token, nil
	})
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("token for %s: %w", repo, context.Cause(ctx))
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

// fetchToken asks the realm for a pull token for repo (or for scope, taken
// from the challenge, when given). Credentials are attached only when the
// realm may receive them; otherwise the request is anonymous.
func (c *Client) fetchToken(ctx context.Context, st *authState, repo, scope string) (cachedToken, error) {
	u, err := url.Parse(st.realm)
	if err != nil {
		return cachedToken{}, fmt.Errorf("token realm: %w", err)
	}
	q := u.Query()
	if st.service != "" {
		q.Set("service", st.service)
	}
	scopes := strings.Fields(scope)
	if len(scopes) == 0 && repo != "" {
		scopes = []string{"repository:" + repo + ":pull"}
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	u.RawQuery = q.Encode()

	authz := ""
	if c.hasCredentials() && c.mayReceiveCredentials(u) {
		authz = c.basicHeader()
	}
	c.log.WithFields(map[string]any{"realm": redactURL(u), "scope": strings.Join(scopes, " "), "anonymous": authz == ""}).
		Debug("fetching registry token")
	start := c.opts.now()
	resp, err := c.sendWithRetry(ctx, request{method: http.MethodGet, url: u, header: http.Header{"Accept": {"application/json"}}}, authz)
	if err != nil {
		return cachedToken{}, fmt.Errorf("fetch token from %s: %w", redactURL(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cachedToken{}, fmt.Errorf("fetch token: %w", newError(resp))
	}
	t, err := decodeToken(io.LimitReader(resp.Body, maxTokenBody), start)
	if err != nil {
		return cachedToken{}, fmt.Errorf("fetch token from %s: %w", redactURL(u), err)
	}
	return t, nil
}

// decodeToken parses a token response. The token expires expires_in (default
// 60s) after the earlier of our request time and the server's issued_at; a
// server clock so far behind that the token would already be expired is
// ignored. It is refreshed a tenth of its lifetime early (1s to 30s).
func decodeToken(r io.Reader, start time.Time) (cachedToken, error) {
	var tr struct {
		Token       string  `json:"token"`
		AccessToken string  `json:"access_token"`
		ExpiresIn   float64 `json:"expires_in"`
		IssuedAt    string  `json:"issued_at"`
	}
	if err := json.NewDecoder(r).Decode(&tr); err != nil {
		return cachedToken{}, fmt.Errorf("decode token response: %w", err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return cachedToken{}, errors.New("token response has no token")
	}
	life := defaultTokenLifetime
	if tr.ExpiresIn > 0 {
		life = time.Duration(min(tr.ExpiresIn, maxTokenLifetime.Seconds()) * float64(time.Second))
	}
	expires := start.Add(life)
	if issued, err := time.Parse(time.RFC3339, tr.IssuedAt); err == nil {
		if e := issued.Add(life); e.Before(expires) && e.After(start) {
			expires = e
		}
	}
	margin := min(max(life/10, time.Second), 30*time.Second)
	return cachedToken{token: tok, refreshAt: expires.Add(-margin)}, nil
}

// mayReceiveCredentials is the credential boundary for token realms.
// Credentials go to https URLs whose host is the upstream's hostname, shares
// its registrable domain (publicsuffix eTLD+1, never for IP addresses or
// single-label names such as localhost), or is listed in WithAuthHosts;
// ports are ignored except for WithAuthHosts entries that name one. Over plain
// http they go only to the upstream's own hostname, and only when the
// upstream itself is plain http.
func (c *Client) mayReceiveCredentials(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	up := c.base.Hostname()
	if u.Scheme != "https" {
		return u.Scheme == "http" && c.base.Scheme == "http" && host == up
	}
	if host == up || c.authHosts[host] || c.authHosts[strings.ToLower(u.Host)] {
		return true
	}
	return sameRegistrableDomain(host, up)
}

func sameRegistrableDomain(a, b string) bool {
	if net.ParseIP(a) != nil || net.ParseIP(b) != nil {
		return false
	}
	da, errA := publicsuffix.EffectiveTLDPlusOne(a)
	db, errB := publicsuffix.EffectiveTLDPlusOne(b)
	return errA == nil && errB == nil && da == db
}
