// Package ui is the web console of `proxy serve`, served under /ui/ on the
// main listener: a dashboard of the cache (charts drawn as inline SVG on the
// server), the hosted and cached repositories, the mirroring policies of each
// hosted repository (DTR's Mirrors tab) and the mirroring jobs with their logs.
//
// Pages are rendered on the server with html/template, so every value that
// comes from a registry or a user (repository names, tags, labels, job logs)
// is escaped by the template engine, and every page works without JavaScript;
// one small embedded script only refreshes the job list (often while jobs
// run, now and then otherwise) and a job's log while it runs. All assets are embedded (go:embed): the console needs no CDN and
// works offline.
//
// Only admins get in, as for /api/v0: the login form's credentials are checked
// by the server's Authorizer (htpasswd users) for auth.Admin, and a signed,
// HttpOnly, SameSite=Strict session cookie is set; every request asks the
// Authorizer again whether its user is still an admin (CheckAdmin), and ends
// the session when not. With token auth (auth.token) there is no password to
// check, and the login page says so. Every state-changing form
// carries a CSRF token bound to the session. The Mirrors and Jobs pages are
// clients of the mirroring API (/api/v0), called in process with the session's
// user (mirror.WithAdmin).
package ui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/internal/units"
	"github.com/ocimirror/proxy/mirror"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// Authorizer checks a request's credentials for an access, as *auth.Authorizer
// does; the console asks it for auth.Admin with the login form's user and
// password as Basic credentials, and on every later request whether the
// session's user is still an admin.
type Authorizer interface {
	Authorize(r *http.Request, access ...auth.Access) (string, error)
	// CheckAdmin is nil while user is still an admin; an *auth.Error says
	// why not, any other error is a fault.
	CheckAdmin(user string) error
	// TokenAuth reports client auth by tokens (auth.token), with which the
	// console's password login cannot work.
	TokenAuth() bool
}

// Options are what the console shows and whom it lets in.
type Options struct {
	// Auth checks logins (required).
	Auth Authorizer
	// Secret signs session cookies and CSRF tokens (http.secret); empty: a
	// random key, so sessions end when the server restarts.
	Secret string
	// Catalog lists repositories (required).
	Catalog Catalog
	// API is the mirroring API (/api/v0); nil when there are no hosted
	// repositories, and then the console has no Mirrors or Jobs pages.
	API http.Handler
	// Stats reads the counters the dashboard samples; nil: no charts.
	Stats StatsSource
	// Upstreams reports each upstream's state for the dashboard; may be nil.
	Upstreams func() []Upstream
	// TopPulls reports the most pulled repositories; nil: the dashboard
	// has no such list.
	TopPulls TopPullsFunc
	// MaxSize is the cache's size cap in bytes (proxy.maxsize); 0: none.
	MaxSize int64
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// Log receives the console's log lines (never a password).
	Log *logrus.Entry
	// Now is the clock (tests).
	Now func() time.Time
}

// Console is the web console's http.Handler; Close stops its sampler.
type Console struct {
	opts    Options
	keys    keys
	mux     *http.ServeMux
	pages   map[string]*template.Template
	sampler *sampler
	log     *logrus.Entry
	now     func() time.Time
}

// New returns the console. Call Start to sample the dashboard's metrics.
func New(opts Options) (*Console, error) {
	if opts.Auth == nil || opts.Catalog == nil {
		return nil, errors.New("ui: Auth and Catalog are required")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Log == nil {
		opts.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	k, err := newKeys(opts.Secret)
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{opts: opts, keys: k, mux: http.NewServeMux(), pages: pages, log: opts.Log, now: opts.Now}
	c.sampler = newSampler(opts.Stats, opts.Now)
	c.routes()
	return c, nil
}

// Start samples the dashboard's counters every interval (10s in serve) until
// ctx ends.
func (c *Console) Start(ctx context.Context, interval time.Duration) {
	if c.opts.Stats == nil {
		return
	}
	go c.sampler.run(ctx, interval)
}

func (c *Console) routes() {
	static, _ := fs.Sub(assets, "static")
	fileServer := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	c.mux.Handle("GET /ui/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		fileServer.ServeHTTP(w, r)
	}))
	c.mux.HandleFunc("GET /ui/login", c.loginPage)
	c.mux.HandleFunc("POST /ui/login", c.login)
	c.mux.HandleFunc("POST /ui/logout", c.authed(c.logout))
	c.mux.HandleFunc("GET /ui/{$}", c.authed(c.dashboard))
	c.mux.HandleFunc("GET /ui/repositories", c.authed(c.repositories))
	c.mux.HandleFunc("GET /ui/repository", c.authed(c.repository))
	c.mux.HandleFunc("GET /ui/mirrors", c.authed(c.mirrors))
	c.mux.HandleFunc("GET /ui/mirrors/edit", c.authed(c.mirrorForm))
	c.mux.HandleFunc("POST /ui/mirrors/edit", c.authed(c.mirrorSubmit))
	c.mux.HandleFunc("POST /ui/mirrors/delete", c.authed(c.mirrorDelete))
	c.mux.HandleFunc("POST /ui/mirrors/enable", c.authed(c.mirrorEnable))
	c.mux.HandleFunc("GET /ui/jobs", c.authed(c.jobs))
	c.mux.HandleFunc("GET /ui/jobs/table", c.authed(c.jobsTable))
	c.mux.HandleFunc("GET /ui/job", c.authed(c.job))
	c.mux.HandleFunc("GET /ui/job/log", c.authed(c.jobLog))
	c.mux.HandleFunc("POST /ui/jobs/run", c.authed(c.jobRun))
	c.mux.HandleFunc("POST /ui/jobs/cancel", c.authed(c.jobCancel))
	c.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, http.StatusNotFound, "There is no such page in the console.")
	})
}

// ServeHTTP serves the console with its security headers: a content security
// policy that allows only the console's own script and styles, no framing, a
// referrer only to this origin, no caching of pages. (With no-referrer,
// Chromium sends "Origin: null" on form posts, which the origin check must
// refuse.)
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
		h.Set("Cache-Control", "no-store")
	}
	if r.URL.Path == "/ui" {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// session is the logged-in admin of a request.
type session struct {
	User string
	CSRF string
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, s session)

// authed serves h only with a valid session, and for a POST only with the
// session's CSRF token and a same-origin Origin (when the browser sends one);
// a GET without a session goes to the login page, and a session whose user
// is no longer an admin is ended.
func (c *Console) authed(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, cookie, err := c.session(r)
		if err != nil && !errors.Is(err, errNoSession) {
			c.endSession(w, r, user, err)
			return
		}
		if err != nil {
			if r.Method == http.MethodGet && !isFragment(r) {
				http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.errorPage(w, r, http.StatusUnauthorized, "Your session has ended. Log in again.")
			return
		}
		s := session{User: user, CSRF: c.keys.csrf(cookie)}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) || !c.keys.checkCSRF(cookie, r.PostFormValue("csrf")) {
				c.log.WithFields(logrus.Fields{"path": r.URL.Path, "remote": r.RemoteAddr}).Warn("console: refused a form without a valid CSRF token")
				c.errorPage(w, r, http.StatusForbidden, "This form has expired or did not come from the console. Reload the page and try again.")
				return
			}
		}
		h(w, r, s)
	}
}

// isFragment reports a request of the live-update script, which wants a
// status, not a redirect to the login page.
func isFragment(r *http.Request) bool { return r.Header.Get("X-Console-Fragment") != "" }

// sameOrigin reports whether a state-changing request came from a page of
// this server: its Origin (or, without one, Referer) names this host. Browsers
// send Origin on POSTs; a client that sends neither passes (the CSRF token
// still has to match).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// render executes page into a buffer first, so a template error is a clean
// 500 instead of half a page.
func (c *Console) render(w http.ResponseWriter, status int, page string, data any) {
	c.renderTemplate(w, status, page, "page", data)
}

// renderTemplate executes one named template of a page's set: a page's
// fragment that the live-update script fetches.
func (c *Console) renderTemplate(w http.ResponseWriter, status int, page, name string, data any) {
	t, ok := c.pages[page]
	if !ok {
		c.log.WithField("page", page).Error("console: no such template")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		c.log.WithError(err).WithField("page", page).Error("console: rendering")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.Copy(w, &buf)
}

// page is what every page's layout needs.
type page struct {
	Title   string
	Nav     string // which nav entry is current
	User    string
	CSRF    string
	Mirrors bool // the mirroring API exists
	Flash   string
}

func (c *Console) base(s session, title, nav string) page {
	return page{Title: title, Nav: nav, User: s.User, CSRF: s.CSRF, Mirrors: c.opts.API != nil}
}

// errorPage is a page with one message in plain words.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	user, cookie, ok := c.sessionOf(r)
	var s session
	if ok {
		s = session{User: user, CSRF: c.keys.csrf(cookie)}
	}
	c.render(w, status, "error", struct {
		page
		Status  int
		Message string
	}{c.base(s, http.StatusText(status), ""), status, msg})
}

// parsePages parses each page template together with the layout and the
// partials (files named _*.html, fragments shared by pages and the
// live-update script).
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "_") {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/_*.html", n)
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"bytes":      units.Bytes,
	"short":      shortDigest,
	"when":       when,
	"iso":        iso,
	"ago":        ago,
	"pct":        func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"query":      url.QueryEscape,
	"contains":   strings.Contains,
	"bytes64":    func(f float64) string { return units.Bytes(int64(f)) },
	"count":      count,
	"ruleFields": func() []string { return []string{"tag", "platform", "license"} },
	"ruleOperators": func() []string {
		return []string{mirror.OpEquals, mirror.OpStartsWith, mirror.OpEndsWith, mirror.OpContains, mirror.OpOneOf, mirror.OpNotOneOf}
	},
}

// shortDigest is the algorithm and the first 12 hex digits of a digest.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

// iso formats a time for a <time datetime>: RFC 3339 in UTC, which machines
// parse (when's "... UTC" is for people, and no valid datetime).
func iso(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// when formats a time in UTC, "" for the zero time.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago is a rough "3m ago" / "in 2h" for a time.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if d := time.Since(t); d >= 0 {
		return roughDuration(d) + " ago"
	}
	return "in " + roughDuration(time.Until(t))
}

func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// asAdmin is ctx marked for the mirroring API as a request of the session's
// admin.
func asAdmin(ctx context.Context, s session) context.Context {
	return mirror.WithAdmin(auth.WithUser(ctx, s.User), s.User)
}
