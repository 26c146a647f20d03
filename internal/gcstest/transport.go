package gcstest

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// rewrite sends requests for the emulator's host over http, whatever their
// scheme, and others as they are.
type rewrite struct{ to string }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	to, err := url.Parse(r.to)
	if err != nil {
		return nil, err
	}
	if req.URL.Host != to.Host {
		return http.DefaultTransport.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.URL.Scheme = to.Scheme
	return http.DefaultTransport.RoundTrip(out)
}

// googleAPIs stands in for the Google hosts the gcs driver calls directly:
// www.googleapis.com (resumable uploads) goes to the emulator, the OAuth
// token endpoint is answered here, every other host is refused.
type googleAPIs struct{ emulator string }

func (g googleAPIs) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Host {
	case "oauth2.googleapis.com":
		body := `{"access_token":"gcstest-token","token_type":"Bearer","expires_in":3600}`
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
	case "www.googleapis.com":
		to, err := url.Parse(g.emulator)
		if err != nil {
			return nil, err
		}
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host, out.Host = to.Scheme, to.Host, to.Host
		return http.DefaultTransport.RoundTrip(out)
	}
	if strings.HasPrefix(g.emulator, req.URL.Scheme+"://"+req.URL.Host) {
		return http.DefaultTransport.RoundTrip(req) // the upload session the emulator handed out
	}
	return nil, fmt.Errorf("gcstest: no request leaves the machine (%s)", req.URL.Host)
}
