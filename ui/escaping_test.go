package ui

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestEscapingQueryValues: values a user puts in the address bar come back
// on the page (the repository of the Mirrors tab and its form, the search and
// source filters) only as text.
func TestEscapingQueryValues(t *testing.T) {
	const hostile = `<img src=x onerror=alert(1)>` // no slash: a name the Mirrors tab accepts
	h := newHarness(t)
	h.login(t, "alice")
	for _, p := range []string{
		"/ui/mirrors?repo=" + url.QueryEscape("dev/"+hostile),
		"/ui/mirrors/edit?kind=poll&repo=" + url.QueryEscape("dev/"+hostile),
		"/ui/repositories?q=" + url.QueryEscape(hostile) + "&source=" + url.QueryEscape(hostile),
	} {
		st, _, body := h.do(t, http.MethodGet, p, nil)
		if st != http.StatusOK {
			t.Errorf("%s: %d", p, st)
			continue
		}
		if strings.Contains(body, hostile) {
			t.Errorf("%s: the value came out as markup", p)
		}
		if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
			t.Errorf("%s: the value is not shown as text:\n%s", p, body)
		}
	}
}
