package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrManifestTooLarge is returned by GetManifest when the upstream
	// manifest exceeds the configured maximum size.
	ErrManifestTooLarge = errors.New("manifest too large")

	// ErrStalled is returned by a body reader when the upstream sent no byte
	// for the stall timeout.
	ErrStalled = errors.New("upstream body stalled")
)

// maxErrorBody bounds how much of an error response body is read to look for
// the registry's errcode list.
const maxErrorBody = 64 << 10

// maxRetryAfter bounds Retry-After values kept in an Error, so that absurd
// values cannot overflow a time.Duration.
const maxRetryAfter = 7 * 24 * time.Hour

// Error is a non-2xx answer from the upstream (or from its token realm),
// carrying the registry's errcode list when the body had one.
type Error struct {
	StatusCode int
	Method     string
	URL        string        // without credentials, query or fragment
	Errors     []ErrorDetail // parsed from {"errors":[{"code","message","detail"}]}
	RetryAfter time.Duration // from Retry-After on 429/503, 0 if none
}

// ErrorDetail is one entry of the registry's errcode list.
type ErrorDetail struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// Error renders the method, URL, status and errcodes. It never includes
// credentials, tokens or query strings.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	for i, d := range e.Errors {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep)
		b.WriteString(d.Code)
		if d.Message != "" {
			b.WriteString(": ")
			b.WriteString(d.Message)
		}
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// IsNotFound reports whether the upstream answered 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// IsUnavailable reports whether err means the upstream could not give an
// answer: a connection error, a timeout (including a stalled body and an
// expired context deadline), a 5xx or a 429. These are the cases where a
// cache should serve stale content. A cancelled context is not one of them.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests
	}
	if errors.Is(err, ErrStalled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error // includes *url.Error, *net.OpError, TLS and DNS errors
	return errors.As(err, &ne)
}

// newError builds an *Error from resp, consuming and closing its body.
func newError(resp *http.Response) *Error {
	defer resp.Body.Close()
	e := &Error{StatusCode: resp.StatusCode}
	if resp.Request != nil {
		e.Method, e.URL = resp.Request.Method, redactURL(resp.Request.URL)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var parsed struct {
		Errors []ErrorDetail `json:"errors"`
	}
	if json.Unmarshal(body, &parsed) == nil {
		e.Errors = parsed.Errors
	}
	return e
}

// parseRetryAfter reads a Retry-After value, at most maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	return ParseRetryAfter(v, now, maxRetryAfter)
}

// ParseRetryAfter reads a Retry-After value in seconds or as an HTTP date, at
// most limit. It returns 0 when absent, malformed or in the past. The mirroring
// engine's rate-limit budget reads the header with it too.
func ParseRetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(limit/time.Second) {
			return limit
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), limit)
	}
	return 0
}

// redactURL renders u without user info, query or fragment, since query
// strings may hold signed tokens (CDN redirects) and user info a password.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}
