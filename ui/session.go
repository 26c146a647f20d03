package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/auth"
)

// cookieName is the session cookie.
const cookieName = "ocimirror_console"

// keys sign sessions and CSRF tokens; the two keys are derived from one
// secret with distinct labels so a session MAC is never a valid CSRF token.
type keys struct {
	session, csrfKey []byte
}

// newKeys derives the keys from secret (http.secret), or from a random one.
func newKeys(secret string) (keys, error) {
	seed := []byte(secret)
	if secret == "" {
		seed = make([]byte, 32)
		if _, err := rand.Read(seed); err != nil {
			return keys{}, fmt.Errorf("ui: session key: %w", err)
		}
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, seed)
		m.Write([]byte("ocimirror console " + label))
		return m.Sum(nil)
	}
	return keys{session: derive("session"), csrfKey: derive("csrf")}, nil
}

func mac(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sign makes a session cookie value: user, expiry (Unix seconds), a random
// nonce (so each login has its own CSRF token) and their MAC.
func (k keys) sign(user string, expires time.Time) (string, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("ui: session nonce: %w", err)
	}
	u := base64.RawURLEncoding.EncodeToString([]byte(user))
	exp := strconv.FormatInt(expires.Unix(), 10)
	n := base64.RawURLEncoding.EncodeToString(nonce)
	return u + "." + exp + "." + n + "." + mac(k.session, u, exp, n), nil
}

// verify returns the user of a session cookie value that is well formed,
// correctly signed and not expired.
func (k keys) verify(v string, now time.Time) (string, bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 4 {
		return "", false
	}
	want := mac(k.session, parts[0], parts[1], parts[2])
	if !hmac.Equal([]byte(want), []byte(parts[3])) {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Unix() >= exp {
		return "", false
	}
	user, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", false
	}
	return string(user), true
}

// csrf is the CSRF token of a session: a MAC of its cookie value.
func (k keys) csrf(cookie string) string { return mac(k.csrfKey, cookie) }

func (k keys) checkCSRF(cookie, token string) bool {
	return token != "" && hmac.Equal([]byte(k.csrf(cookie)), []byte(token))
}

// errNoSession is a request without a valid session cookie.
var errNoSession = errors.New("no session")

// session returns the user and cookie value of a request's session: a well
// formed, signed, unexpired cookie whose user is still an admin. That is
// asked of the Authorizer on every request (a map lookup and a stat of the
// htpasswd file), so removing a user from auth.admins or from the htpasswd
// file ends their sessions at once, not 12 hours later. The error is
// errNoSession without a valid cookie, else why the user is no longer an
// admin (with the user and cookie).
func (c *Console) session(r *http.Request) (user, cookie string, err error) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return "", "", errNoSession
	}
	user, ok := c.keys.verify(ck.Value, c.now())
	if !ok {
		return "", "", errNoSession
	}
	if err := c.opts.Auth.CheckAdmin(user); err != nil {
		return user, ck.Value, err
	}
	return user, ck.Value, nil
}

// sessionOf returns the user and cookie value of a request's valid session.
func (c *Console) sessionOf(r *http.Request) (user, cookie string, ok bool) {
	user, cookie, err := c.session(r)
	return user, cookie, err == nil
}

// endSession ends a session whose user is no longer an admin: it deletes the
// cookie, logs why, and says so in plain words.
func (c *Console) endSession(w http.ResponseWriter, r *http.Request, user string, why error) {
	clearCookie(w, r)
	msg := "Your session has ended: the server could not check that you are still an admin; see its log."
	var ae *auth.Error
	if errors.As(why, &ae) {
		msg = "Your session has ended: " + ae.ErrCode().Message + ". Log in as an admin."
		c.log.WithFields(logrus.Fields{"user": user, "remote": r.RemoteAddr, "reason": ae.ErrCode().Message}).Warn("console: session ended, the user is no longer an admin")
	} else {
		c.log.WithError(why).WithFields(logrus.Fields{"user": user, "remote": r.RemoteAddr}).Error("console: session ended, its user could not be checked")
	}
	c.errorPage(w, r, http.StatusForbidden, msg)
}

// clearCookie deletes the session cookie in the browser.
func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// loginData is the login page's model.
type loginData struct {
	page
	Next     string
	Username string // as typed, shown again after a failure
	Error    string
	// NoLogin says why nobody can log in here; the page then has no form.
	NoLogin string
}

// tokenAuthMessage is the login page with token auth. The console checks a
// user name and password; with auth.token this server holds neither, only
// the certificates that verify the tokens its token service signs, so it has
// nothing to check a password against. (Asking the realm for a token with the
// typed password, as docker login does, would make the console a client of
// the token service with the users' passwords; it is not done.)
const tokenAuthMessage = "The console cannot log anyone in on this server: its client auth is token auth (auth.token), " +
	"where users log in to an external token service, and the console can only check a user name and password " +
	"against auth.htpasswd. To use the console, configure auth.htpasswd (and auth.admins) instead of auth.token. " +
	"The registry API and /api/v0 work with tokens as before."

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := c.sessionOf(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d := loginData{page: page{Title: "Log in"}, Next: safeNext(r.URL.Query().Get("next"))}
	if c.opts.Auth.TokenAuth() {
		d.NoLogin = tokenAuthMessage
	}
	c.render(w, http.StatusOK, "login", d)
}

// login checks the form's user and password with the Authorizer, as Basic
// credentials on a copy of the request asking for auth.Admin (so failed
// logins are logged and throttled per address like any other), and sets the
// session cookie. The password is never logged nor written back.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	user, pass := r.PostFormValue("username"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	fail := func(status int, msg string) {
		c.render(w, status, "login", loginData{page: page{Title: "Log in"}, Next: next, Username: user, Error: msg})
	}
	if c.opts.Auth.TokenAuth() {
		c.render(w, http.StatusForbidden, "login", loginData{page: page{Title: "Log in"}, Next: next, NoLogin: tokenAuthMessage})
		return
	}
	if !sameOrigin(r) {
		fail(http.StatusForbidden, "This login form did not come from the console.")
		return
	}
	if user == "" || pass == "" {
		fail(http.StatusBadRequest, "Enter a user name and a password.")
		return
	}
	check := r.Clone(r.Context())
	check.Header = http.Header{}
	check.SetBasicAuth(user, pass)
	got, err := c.opts.Auth.Authorize(check, auth.Access{Action: auth.Admin})
	if err != nil {
		status, msg := loginError(err)
		fail(status, msg)
		return
	}
	if got == "" {
		got = user
	}
	v, err := c.keys.sign(got, c.now().Add(c.opts.SessionTTL))
	if err != nil {
		c.log.WithError(err).Error("console: login")
		fail(http.StatusInternalServerError, "The server could not start a session; see its log.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: v, Path: Prefix, MaxAge: int(c.opts.SessionTTL.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.log.WithFields(logrus.Fields{"user": got, "remote": r.RemoteAddr}).Info("console: logged in")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// loginError turns the Authorizer's refusal into a status and plain words.
func loginError(err error) (int, string) {
	var ae *auth.Error
	if !errors.As(err, &ae) {
		return http.StatusInternalServerError, "The login could not be checked; see the server log."
	}
	status := ae.Status()
	switch status {
	case http.StatusForbidden:
		return status, "This user is not an admin (auth.admins); the console is for admins."
	case http.StatusTooManyRequests:
		return status, "Too many failed logins from your address. Wait a minute and try again."
	case http.StatusUnauthorized:
		if strings.Contains(err.Error(), "has none") {
			return status, "This server has no client auth configured (auth.htpasswd); the console needs it."
		}
		return status, "Wrong user name or password."
	}
	return http.StatusInternalServerError, "The login could not be checked; see the server log."
}

// logout ends the session in this browser (the cookie is a bearer credential
// until it expires; logging out deletes it).
func (c *Console) logout(w http.ResponseWriter, r *http.Request, s session) {
	clearCookie(w, r)
	c.log.WithFields(logrus.Fields{"user": s.User, "remote": r.RemoteAddr}).Info("console: logged out")
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// safeNext is where to go after the login: a path of the console, never
// another site ("//evil", "https://...").
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}
