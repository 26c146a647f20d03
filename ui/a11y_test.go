package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	idAttr  = regexp.MustCompile(`\sid="([^"]*)"`)
	refAttr = regexp.MustCompile(`\s(aria-labelledby|aria-describedby|for)="([^"]*)"`)
)

// checkRefs fails the test with each problem refProblems finds in body.
func checkRefs(t *testing.T, where, body string) {
	t.Helper()
	for _, p := range refProblems(body) {
		t.Errorf("%s: %s", where, p)
	}
}

// refProblems lists the ids of body that hold whitespace or are given twice,
// and the aria-labelledby, aria-describedby and for attributes that name an
// id the page does not have: a screen reader then announces nothing for them.
func refProblems(body string) []string {
	var out []string
	ids := map[string]bool{}
	for _, m := range idAttr.FindAllStringSubmatch(body, -1) {
		id := m[1]
		if id == "" || strings.ContainsAny(id, " \t\n\r\f") {
			out = append(out, fmt.Sprintf("invalid id %q", id))
		}
		if ids[id] {
			out = append(out, fmt.Sprintf("id %q is given twice", id))
		}
		ids[id] = true
	}
	for _, m := range refAttr.FindAllStringSubmatch(body, -1) {
		attr, val := m[1], m[2]
		refs := strings.Fields(val)
		if len(refs) == 0 || (attr == "for" && (len(refs) != 1 || refs[0] != val)) {
			out = append(out, fmt.Sprintf("%s=%q must name one id", attr, val))
			continue
		}
		for _, ref := range refs {
			if !ids[ref] {
				out = append(out, fmt.Sprintf("%s=%q names no id of the page (%q)", attr, val, ref))
			}
		}
	}
	return out
}

// TestIDReferences: on every page the tests render, each label and ARIA
// reference names an existing, valid id.
func TestIDReferences(t *testing.T) {
	h := newHarness(t)
	token := h.login(t, "alice")
	for _, p := range []string{
		"/ui/", "/ui/repositories", "/ui/repository?name=dev/app", "/ui/mirrors?repo=dev/app",
		"/ui/mirrors/edit?repo=dev/app", "/ui/mirrors/edit?repo=dev/app&kind=poll&id=p1",
		"/ui/jobs", "/ui/jobs/table", "/ui/job?id=j1", "/ui/job/log?id=j1", "/ui/no-such-page",
	} {
		_, _, body := h.do(t, http.MethodGet, p, nil)
		checkRefs(t, p, body)
	}
	// The dashboard's sections are labelled by their headings.
	_, _, body := h.do(t, http.MethodGet, "/ui/", nil)
	for _, want := range []string{`aria-labelledby="h-last-hour"`, `aria-labelledby="h-last-day"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the dashboard lacks %s", want)
		}
	}
	// The mirror form with an error, and the login page with one.
	_, _, body = h.do(t, http.MethodPost, "/ui/mirrors/edit", url.Values{"csrf": {token}, "repo": {"dev/app"},
		"direction": {"poll"}, "remoteRepository": {"x"}, "action": {"save"}})
	checkRefs(t, "mirror form with errors", body)
	anon := newHarness(t)
	_, _, body = anon.do(t, http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"nope"}})
	checkRefs(t, "failed login", body)
	_, _, body = anon.do(t, http.MethodGet, "/ui/login", nil)
	checkRefs(t, "login", body)
}

// TestCheckRefs: the checker itself finds each kind of fault.
func TestCheckRefs(t *testing.T) {
	cases := []struct {
		name, body string
		ok         bool
	}{
		{"valid", `<h2 id="h-a">A</h2><section aria-labelledby="h-a"></section><label for="x">X</label><input id="x" aria-describedby="h-a x">`, true},
		{"space in id", `<h2 id="h-last hour">A</h2><section aria-labelledby="h-last hour"></section>`, false},
		{"dangling ref", `<section aria-labelledby="h-b"></section><h2 id="h-a">A</h2>`, false},
		{"dangling for", `<label for="y">Y</label><input id="x">`, false},
		{"duplicate id", `<p id="a"></p><p id="a"></p>`, false},
	}
	for _, c := range cases {
		if got := refProblems(c.body); (len(got) == 0) != c.ok {
			t.Errorf("%s: problems %q, want ok=%v", c.name, got, c.ok)
		}
	}
}

// timeAttr matches a <time> element's datetime attribute and its title.
var timeAttr = regexp.MustCompile(`<time datetime="([^"]*)" title="([^"]*)">`)

// TestTimeDatetimeRFC3339: every <time> element's datetime is machine
// readable (RFC 3339), while its title keeps the human "... UTC".
func TestTimeDatetimeRFC3339(t *testing.T) {
	h := newHarness(t)
	h.login(t, "alice")
	for _, p := range []string{
		"/ui/", "/ui/repositories", "/ui/repository?name=" + url.QueryEscape("library/"+evil),
		"/ui/jobs", "/ui/jobs/table",
	} {
		_, _, body := h.do(t, http.MethodGet, p, nil)
		ms := timeAttr.FindAllStringSubmatch(body, -1)
		if len(ms) == 0 {
			t.Errorf("%s: no <time> element", p)
		}
		for _, m := range ms {
			if _, err := time.Parse(time.RFC3339, m[1]); err != nil {
				t.Errorf("%s: datetime %q: %v", p, m[1], err)
			}
			if m[2] != "" && !strings.HasSuffix(m[2], " UTC") {
				t.Errorf("%s: title %q lost its human form", p, m[2])
			}
		}
	}
}

// TestJobsPageKeepsPolling: the Jobs page's live region asks the script to
// poll even when no job runs (data-live-idle), so a job started later shows
// without a reload; a job's page does not; the script reads that attribute
// and polls only while the page is visible; and no page has an inline
// script (the CSP allows none).
func TestJobsPageKeepsPolling(t *testing.T) {
	h := newHarness(t)
	h.login(t, "alice")
	_, _, jobs := h.do(t, http.MethodGet, "/ui/jobs", nil)
	if !regexp.MustCompile(`<div data-live="/ui/jobs/table\?[^"]*" data-live-idle="\d+"`).MatchString(jobs) {
		t.Errorf("the Jobs page's live region does not poll while idle:\n%s", jobs)
	}
	_, _, job := h.do(t, http.MethodGet, "/ui/job?id=j1", nil)
	if !strings.Contains(job, `data-live="/ui/job/log?id=j1"`) || strings.Contains(job, "data-live-idle") {
		t.Errorf("a job's page: want a live log that stops when the job ends:\n%s", job)
	}
	_, _, js := h.do(t, http.MethodGet, "/ui/static/console.js", nil)
	for _, want := range []string{`getAttribute("data-live-idle")`, "visibilitychange", `document.visibilityState === "hidden"`} {
		if !strings.Contains(js, want) {
			t.Errorf("console.js lacks %s", want)
		}
	}
	for _, page := range []string{jobs, job} {
		for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
			if !strings.Contains(tag, ` src="/ui/static/`) {
				t.Errorf("an inline script: %s", tag)
			}
		}
	}
}
