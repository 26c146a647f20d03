package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/testpki"
)

const (
	testIssuer  = "test-token-issuer"
	testService = "mirror-test"
)

// tokenService is a Docker token service (the distribution token spec): GET
// /token?service=&scope=... with optional Basic credentials answers a JWT that
// grants what policy allows of the scopes asked for. Tokens are ES256, signed
// by a key whose certificate a test CA issued; the certificate goes in the x5c
// header, which is how distribution's controller finds the key and checks it
// against auth.token.rootcertbundle.
type tokenService struct {
	CAPath string // the CA certificate, PEM, for rootcertbundle
	users  map[string]string
	policy func(user, typ, name string) []string // actions user may have

	key  *ecdsa.PrivateKey
	cert []byte // DER of the signing certificate

	mu     sync.Mutex
	scopes []string // every scope asked for
}

func newTokenService(t *testing.T, users map[string]string, policy func(user, typ, name string) []string) *tokenService {
	t.Helper()
	ca := testpki.NewCA(t)
	caCert, err := x509.ParseCertificate(ca.Cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "token signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.Cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tokenService{CAPath: ca.PEMPath, users: users, policy: policy, key: key, cert: der}
}

// mint signs claims as a compact JWS.
func (s *tokenService) mint(t *testing.T, claims token.ClaimSet) string {
	t.Helper()
	header, err := json.Marshal(map[string]any{
		"alg": "ES256", "typ": "JWT",
		"x5c": []string{base64.StdEncoding.EncodeToString(s.cert)},
	})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	r, sg, err := ecdsa.Sign(rand.Reader, s.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sg.FillBytes(sig[32:])
	return input + "." + enc.EncodeToString(sig)
}

// claims are the claims of a token valid now for user with access.
func claims(user string, access ...*token.ResourceActions) token.ClaimSet {
	now := time.Now()
	jti := make([]byte, 8)
	_, _ = rand.Read(jti)
	return token.ClaimSet{
		Issuer: testIssuer, Subject: user, Audience: token.AudienceList{testService},
		Expiration: now.Add(5 * time.Minute).Unix(), NotBefore: now.Add(-time.Second).Unix(),
		IssuedAt: now.Unix(), JWTID: hex.EncodeToString(jti), Access: access,
	}
}

func (s *tokenService) serve(w http.ResponseWriter, r *http.Request, t *testing.T) {
	user, pass, ok := r.BasicAuth()
	if ok && (s.users[user] == "" || s.users[user] != pass) {
		http.Error(w, `{"details":"bad credentials"}`, http.StatusUnauthorized)
		return
	}
	if r.URL.Query().Get("service") != testService {
		http.Error(w, "wrong service", http.StatusBadRequest)
		return
	}
	var access []*token.ResourceActions
	for _, scope := range r.URL.Query()["scope"] {
		s.mu.Lock()
		s.scopes = append(s.scopes, scope)
		s.mu.Unlock()
		for _, one := range strings.Fields(scope) {
			typ, rest, ok1 := strings.Cut(one, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok1 || i < 0 {
				http.Error(w, "bad scope", http.StatusBadRequest)
				return
			}
			name, actions := rest[:i], strings.Split(rest[i+1:], ",")
			allowed := s.policy(user, typ, name)
			ra := &token.ResourceActions{Type: typ, Name: name}
			for _, a := range actions {
				for _, b := range allowed {
					if a == b {
						ra.Actions = append(ra.Actions, a)
					}
				}
			}
			if len(ra.Actions) > 0 {
				access = append(access, ra)
			}
		}
	}
	tok := s.mint(t, claims(user, access...))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300})
}

// testPolicy: alice owns dev/*, and may use the catalog; bob and anonymous
// pull anything, bob may use the catalog too; carol may do nothing.
func testPolicy(user, typ, name string) []string {
	switch {
	case typ == "registry" && name == "catalog" && (user == "alice" || user == "bob"):
		return []string{"*"}
	case typ != "repository":
		return nil
	case user == "alice" && strings.HasPrefix(name, "dev/"):
		return []string{"pull", "push", "delete"}
	case user == "alice" || user == "bob" || user == "":
		return []string{"pull"}
	}
	return nil
}

var testUsers = map[string]string{"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

// testAccess maps a request to what it needs, as the proxy's router will:
// /v2/ is the base, /v2/_catalog the catalog, /api/v0 the admin API, reads of
// manifests and blobs pull, uploads push and pull, DELETE deletes.
func testAccess(r *http.Request) []Access {
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		return nil
	case p == "/v2/_catalog":
		return []Access{{Action: Pull}}
	case strings.HasPrefix(p, "/api/v0/"):
		return []Access{{Action: Admin}}
	}
	rest := strings.TrimPrefix(p, "/v2/")
	i := strings.LastIndex(rest, "/manifests/")
	if j := strings.LastIndex(rest, "/blobs/"); j > i {
		i = j
	}
	if i < 0 {
		i = strings.LastIndex(rest, "/tags/")
	}
	repo := rest[:max(i, 0)]
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return []Access{{Repo: repo, Action: Pull}}
	case http.MethodDelete:
		return []Access{{Repo: repo, Action: Delete}}
	}
	return []Access{{Repo: repo, Action: Push}, {Repo: repo, Action: Pull}}
}

// tokenServer runs the token service at /token and behind a, on one server,
// the app; it returns the server and the auth config for it. mod adjusts the
// config before New.
func tokenServer(t *testing.T, svc *tokenService, app http.Handler, mod func(*config.Auth), opts ...Option) (*httptest.Server, *Authorizer) {
	t.Helper()
	var guarded http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			svc.serve(w, r, t)
			return
		}
		guarded.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := config.Auth{Token: &config.Token{
		Realm: srv.URL + "/token", Service: testService, Issuer: testIssuer,
		RootCertBundle: svc.CAPath, SigningAlgorithms: []string{"ES256"},
	}}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	guarded = guard(a, testAccess, app)
	return srv, a
}

// fetchToken asks the realm for a token, as a client does after a challenge.
func fetchToken(t *testing.T, realm, service, user, pass string, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {service}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	req, err := http.NewRequest(http.MethodGet, realm+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Token string }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil || body.Token == "" {
		t.Fatalf("token service: %s", resp.Status)
	}
	return body.Token
}

// parseChallenge splits a WWW-Authenticate value into its scheme and parameters.
func parseChallenge(h string) (scheme string, params map[string]string) {
	scheme, rest, _ := strings.Cut(h, " ")
	params = map[string]string{}
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			val, after, _ = strings.Cut(after[1:], `"`)
		} else {
			val, after, _ = strings.Cut(after, ",")
		}
		params[strings.TrimSpace(key)] = val
		rest = strings.TrimPrefix(strings.TrimSpace(after), ",")
	}
	return scheme, params
}

func do(t *testing.T, method, url, bearer string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// The whole token dance, as a client does it: no token -> 401 Bearer challenge
// -> token from the realm for the challenge's scope -> retry succeeds.
func TestTokenFlow(t *testing.T) {
	svc := newTokenService(t, testUsers, testPolicy)
	log, _ := testLogger()
	srv, _ := tokenServer(t, svc, echoUser, nil, WithLogger(log))

	upload := srv.URL + "/v2/dev/app/blobs/uploads/"
	resp := do(t, http.MethodPost, upload, "")
	if resp.StatusCode != 401 {
		t.Fatalf("without a token: %s", resp.Status)
	}
	scheme, p := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	if scheme != "Bearer" || p["realm"] != srv.URL+"/token" || p["service"] != testService ||
		sortActions(p["scope"]) != "repository:dev/app:pull,push" || p["error"] != "" {
		t.Fatalf("challenge %q", resp.Header.Get("WWW-Authenticate"))
	}
	if code, msg := errBody(t, resp.Body); code != "UNAUTHORIZED" || !strings.Contains(msg, "push to dev/app needs a login") {
		t.Errorf("body %s %q", code, msg)
	}

	tok := fetchToken(t, p["realm"], p["service"], "alice", "alice-pw", p["scope"])
	resp = do(t, http.MethodPost, upload, tok)
	if resp.StatusCode != 200 || resp.Header.Get("X-User") != "alice" {
		t.Fatalf("with alice's token: %s user %q", resp.Status, resp.Header.Get("X-User"))
	}
	// The same token does not reach beyond its scope.
	if resp := do(t, http.MethodDelete, srv.URL+"/v2/dev/app/manifests/sha256:"+strings.Repeat("a", 64), tok); resp.StatusCode != 403 {
		t.Errorf("delete with a pull,push token: %s", resp.Status)
	}
	if resp := do(t, http.MethodPost, srv.URL+"/v2/dev/other/blobs/uploads/", tok); resp.StatusCode != 403 {
		t.Errorf("push to another repository: %s", resp.Status)
	}

	// The base endpoint challenges without a scope, and accepts a token
	// for nothing in particular (docker login).
	resp = do(t, http.MethodGet, srv.URL+"/v2/", "")
	if _, p := parseChallenge(resp.Header.Get("WWW-Authenticate")); resp.StatusCode != 401 || p["realm"] == "" || p["scope"] != "" {
		t.Errorf("/v2/ without a token: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	login := fetchToken(t, srv.URL+"/token", testService, "bob", "bob-pw")
	if resp := do(t, http.MethodGet, srv.URL+"/v2/", login); resp.StatusCode != 200 || resp.Header.Get("X-User") != "bob" {
		t.Errorf("/v2/ with bob's token: %s %q", resp.Status, resp.Header.Get("X-User"))
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if len(svc.scopes) != 1 || sortActions(svc.scopes[0]) != "repository:dev/app:pull,push" {
		t.Errorf("scopes asked of the token service: %q", svc.scopes)
	}
}

func TestTokenRules(t *testing.T) {
	svc := newTokenService(t, testUsers, testPolicy)
	other := newTokenService(t, testUsers, testPolicy) // a CA the mirror does not trust
	get := func(user, pass string, scopes ...string) func(t *testing.T, realm string) string {
		return func(t *testing.T, realm string) string {
			return fetchToken(t, realm, testService, user, pass, scopes...)
		}
	}
	minted := func(s *tokenService, mod func(*token.ClaimSet)) func(t *testing.T, realm string) string {
		return func(t *testing.T, _ string) string {
			c := claims("alice", &token.ResourceActions{Type: "repository", Name: "library/alpine", Actions: []string{"pull"}},
				&token.ResourceActions{Type: "repository", Name: "dev/app", Actions: []string{"pull", "push"}})
			if mod != nil {
				mod(&c)
			}
			return s.mint(t, c)
		}
	}
	none := func(*testing.T, string) string { return "" }
	const (
		alpinePull = "repository:library/alpine:pull"
		appPush    = "repository:dev/app:pull,push"
		appDelete  = "repository:dev/app:delete"
		catalog    = "registry:catalog:*"
	)
	tests := []struct {
		name   string
		cfg    string // anon, closed, admins
		method string
		path   string
		token  func(t *testing.T, realm string) string
		status int
		user   string
		code   string
		chal   map[string]string // challenge parameters that must be present ("" value: absent)
	}{
		{"base no token", "anon", "GET", "/v2/", none, 401, "", "UNAUTHORIZED", map[string]string{"scope": "", "error": ""}},
		{"pull no token", "anon", "GET", "/v2/library/alpine/manifests/3.20", none, 200, "", "", nil},
		{"pull anonymous token", "anon", "GET", "/v2/library/alpine/manifests/3.20", get("", "", alpinePull), 200, "", "", nil},
		{"pull token lacking pull", "anon", "GET", "/v2/library/alpine/manifests/3.20", get("carol", "carol-pw", alpinePull), 200, "carol", "", nil},
		{"pull minted token", "anon", "GET", "/v2/library/alpine/manifests/3.20", minted(svc, nil), 200, "alice", "", nil},
		{"pull expired token", "anon", "GET", "/v2/library/alpine/manifests/3.20", minted(svc, func(c *token.ClaimSet) {
			c.IssuedAt, c.NotBefore, c.Expiration = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Minute).Unix()
		}), 401, "", "UNAUTHORIZED", map[string]string{"error": "invalid_token", "scope": alpinePull}},
		{"pull token not yet valid", "anon", "GET", "/v2/library/alpine/manifests/3.20", minted(svc, func(c *token.ClaimSet) {
			c.NotBefore = time.Now().Add(10 * time.Minute).Unix()
		}), 401, "", "UNAUTHORIZED", map[string]string{"error": "invalid_token"}},
		{"pull wrong issuer", "anon", "GET", "/v2/library/alpine/manifests/3.20", minted(svc, func(c *token.ClaimSet) { c.Issuer = "someone-else" }), 401, "", "UNAUTHORIZED", map[string]string{"error": "invalid_token"}},
		{"pull wrong audience", "anon", "GET", "/v2/library/alpine/manifests/3.20", minted(svc, func(c *token.ClaimSet) { c.Audience = token.AudienceList{"registry.other"} }), 401, "", "UNAUTHORIZED", map[string]string{"error": "invalid_token"}},
		{"pull untrusted signer", "anon", "GET", "/v2/library/alpine/manifests/3.20", minted(other, nil), 401, "", "UNAUTHORIZED", nil},
		{"pull garbage token", "anon", "GET", "/v2/library/alpine/manifests/3.20", func(*testing.T, string) string { return "not-a-jwt" }, 401, "", "UNAUTHORIZED", map[string]string{"error": "invalid_token"}},

		{"push no token", "anon", "POST", "/v2/dev/app/blobs/uploads/", none, 401, "", "UNAUTHORIZED", map[string]string{"scope": appPush, "error": ""}},
		{"push alice", "anon", "POST", "/v2/dev/app/blobs/uploads/", get("alice", "alice-pw", appPush), 200, "alice", "", nil},
		{"push with a pull token", "anon", "POST", "/v2/dev/app/blobs/uploads/", get("bob", "bob-pw", appPush), 403, "", "DENIED", map[string]string{"error": "insufficient_scope", "scope": appPush}},
		{"push anonymous token", "anon", "POST", "/v2/dev/app/blobs/uploads/", get("", "", appPush), 401, "", "UNAUTHORIZED", map[string]string{"scope": appPush, "error": ""}},
		{"push expired token", "anon", "POST", "/v2/dev/app/blobs/uploads/", minted(svc, func(c *token.ClaimSet) { c.Expiration = time.Now().Add(-2 * time.Minute).Unix() }), 401, "", "UNAUTHORIZED", map[string]string{"error": "invalid_token"}},
		{"delete with a push token", "anon", "DELETE", "/v2/dev/app/manifests/latest", get("alice", "alice-pw", appPush), 403, "", "DENIED", nil},
		{"delete alice", "anon", "DELETE", "/v2/dev/app/manifests/latest", get("alice", "alice-pw", appDelete), 200, "alice", "", nil},
		{"admin catalog grant", "anon", "GET", "/api/v0/jobs", get("alice", "alice-pw", catalog), 200, "alice", "", nil},
		{"admin without catalog grant", "anon", "GET", "/api/v0/jobs", get("alice", "alice-pw", alpinePull), 403, "", "DENIED", map[string]string{"scope": catalog}},
		{"catalog no token", "anon", "GET", "/v2/_catalog", none, 200, "", "", nil},

		{"closed pull no token", "closed", "GET", "/v2/library/alpine/manifests/3.20", none, 401, "", "UNAUTHORIZED", map[string]string{"scope": alpinePull}},
		{"closed pull bob", "closed", "GET", "/v2/library/alpine/manifests/3.20", get("bob", "bob-pw", alpinePull), 200, "bob", "", nil},
		{"closed pull token lacking pull", "closed", "GET", "/v2/library/alpine/manifests/3.20", get("carol", "carol-pw", alpinePull), 403, "", "DENIED", map[string]string{"error": "insufficient_scope"}},
		{"closed pull anonymous token", "closed", "GET", "/v2/library/alpine/manifests/3.20", get("", "", alpinePull), 401, "", "UNAUTHORIZED", nil},

		{"admins listed", "admins", "GET", "/api/v0/jobs", get("alice", "alice-pw", catalog), 200, "alice", "", nil},
		{"admins not listed", "admins", "GET", "/api/v0/jobs", get("bob", "bob-pw", catalog), 403, "", "DENIED", nil},
	}
	mods := map[string]func(*config.Auth){
		"anon":   nil,
		"closed": func(c *config.Auth) { c.AnonymousPull = boolp(false) },
		"admins": func(c *config.Auth) { c.Admins = []string{"alice"} },
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A server each: the failures of one case must not lock the
			// next out (every client here is 127.0.0.1).
			log, logs := testLogger()
			srv, _ := tokenServer(t, svc, echoUser, mods[tc.cfg], WithLogger(log))
			tok := tc.token(t, srv.URL+"/token")
			resp := do(t, tc.method, srv.URL+tc.path, tok)
			if tok != "" && strings.Contains(logs.String(), tok) {
				t.Errorf("the token is in the log:\n%s", logs)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d", resp.Status, tc.status)
			}
			if tc.status == 200 {
				if got := resp.Header.Get("X-User"); got != tc.user {
					t.Errorf("user %q, want %q", got, tc.user)
				}
				return
			}
			if code, msg := errBody(t, resp.Body); code != tc.code {
				t.Errorf("errcode %s %q, want %s", code, msg, tc.code)
			}
			h := resp.Header.Get("WWW-Authenticate")
			scheme, p := parseChallenge(h)
			if tc.status == 401 && (scheme != "Bearer" || p["realm"] != srv.URL+"/token" || p["service"] != testService) {
				t.Errorf("challenge %q", h)
			}
			for k, want := range tc.chal {
				if k == "scope" {
					p[k] = sortActions(p[k])
				}
				if p[k] != want {
					t.Errorf("challenge %s=%q, want %q (%s)", k, p[k], want, h)
				}
			}
		})
	}
}

// sortActions sorts the actions of each scope in a scope parameter:
// distribution writes them in map order.
func sortActions(scope string) string {
	var out []string
	for _, one := range strings.Fields(scope) {
		i := strings.LastIndexByte(one, ':')
		if i < 0 {
			out = append(out, one)
			continue
		}
		actions := strings.Split(one[i+1:], ",")
		sort.Strings(actions)
		out = append(out, one[:i+1]+strings.Join(actions, ","))
	}
	return strings.Join(out, " ")
}

// writeCA writes a CA certificate that signs nothing, for config tests.
func writeCA(t *testing.T) string { return testpki.NewCA(t).PEMPath }
