package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// maxRetryWait is the longest Retry-After the client waits out; a longer
	// one fails at once with the 429/503 *Error.
	maxRetryWait = 10 * time.Second
	// maxBackoff caps the exponential backoff between retries.
	maxBackoff = 10 * time.Second
)

// errTooManyRedirects stops a redirect chain longer than maxRedirects.
var errTooManyRedirects = errors.New("too many redirects")

// request describes one logical request; it is rebuilt for every attempt.
type request struct {
	method string
	url    *url.URL
	header http.Header
	repo   string // repository the request is for ("" for /v2/): the token scope
}

// do sends r with authentication and retries. On a 401 it answers the
// challenge and retries exactly once; the final response, whatever its
// status, is returned for the caller to judge. 5xx and 429 answers that
// outlast the retries come back as *Error. The outcome goes into the
// client's Health.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	resp, err := c.exchange(ctx, r)
	c.recordOutcome(ctx, err)
	return resp, err
}

// exchange is do without the Health record.
func (c *Client) exchange(ctx context.Context, r request) (*http.Response, error) {
	authz, err := c.authorization(ctx, r.repo)
	if err != nil {
		return nil, err
	}
	resp, err := c.sendWithRetry(ctx, r, authz)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	next, ok, err := c.reauthorize(ctx, r.repo, resp.Header, authz)
	if err != nil || !ok {
		unauthorized := newError(resp)
		if err != nil {
			return nil, err
		}
		return nil, unauthorized
	}
	resp.Body.Close()
	return c.sendWithRetry(ctx, r, next)
}

// sendWithRetry sends r, retrying GET and HEAD after connection errors and
// 5xx answers up to the configured count with exponential backoff, or after
// the Retry-After the upstream asked for. A 429 is retried only when its
// Retry-After is at most maxRetryWait; any answer asking for a longer wait
// fails at once, so a cache can serve stale content instead of hammering a
// rate limit. Timeouts are not retried: they already cost their full
// duration. While the upstream is down (the last request failed, after its
// own retries) a request is tried once: a cache serving stale content answers
// at once instead of after the backoff, and the first answer brings the
// retries back. Nothing of a response has reached the caller when a retry
// happens.
func (c *Client) sendWithRetry(ctx context.Context, r request, authz string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, r, authz)
		var failure error
		switch {
		case err != nil:
			if ctx.Err() != nil || !retryableError(err) {
				return nil, err
			}
			failure = err
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			e := newError(resp)
			if e.RetryAfter > maxRetryWait || (e.StatusCode == http.StatusTooManyRequests && e.RetryAfter == 0) {
				return nil, e
			}
			failure = e
		default:
			return resp, nil
		}
		if attempt >= c.opts.retries || c.health.failures.Load() > 0 ||
			(r.method != http.MethodGet && r.method != http.MethodHead) {
			return nil, failure
		}
		wait := c.backoff(attempt)
		var e *Error
		if errors.As(failure, &e) && e.RetryAfter > 0 {
			wait = e.RetryAfter
		}
		c.log.WithFields(map[string]any{"url": redactURL(r.url), "attempt": attempt + 1, "wait": wait}).
			WithError(failure).Info("retrying upstream request")
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%w (last error: %v)", err, failure)
		}
	}
}

// send performs one attempt. The response body is wrapped so that it fails
// with ErrStalled when no byte arrives within the stall timeout, and so that
// closing it releases the attempt's context.
func (c *Client) send(ctx context.Context, r request, authz string) (*http.Response, error) {
	actx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(actx, r.method, r.url.String(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = append([]string(nil), v...)
	}
	req.Header.Set("User-Agent", c.opts.userAgent)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redactURL(r.url) // a redirect target may carry a signed query
		}
		return nil, err
	}
	c.observeRateLimit(resp.Header)
	body := newBodyReader(ctx, resp.Body, c.opts.stallTimeout, cancel)
	body.onStall = c.recordFailure
	resp.Body = body
	return resp, nil
}

// checkRedirect follows up to maxRedirects redirects and removes the
// Authorization header from any hop that is not the upstream itself (same
// scheme and host:port), so tokens and passwords never reach a CDN or a plain
// http host.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: stopped after %d", errTooManyRedirects, maxRedirects)
	}
	if !c.isUpstream(req.URL) {
		req.Header.Del("Authorization")
	}
	return nil
}

// isUpstream reports whether u points at the upstream's scheme and host.
func (c *Client) isUpstream(u *url.URL) bool {
	if u.Scheme != c.base.Scheme {
		return false
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		host = strings.ToLower(strings.TrimSuffix(u.Host, ":"+port))
	}
	return host == c.base.Host
}

// retryableError reports whether a transport error may go away on retry:
// connection refused or reset, EOF before the headers. Timeouts, TLS
// verification failures and redirect loops will not.
func retryableError(err error) bool {
	var ne net.Error
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.Is(err, errTooManyRedirects), errors.As(err, &certErr),
		errors.As(err, &unknownCA), errors.As(err, &hostErr):
		return false
	case errors.As(err, &ne) && ne.Timeout():
		return false
	}
	return true
}

// backoff returns the wait before retry attempt+1: the configured backoff
// doubled per attempt, capped, with up to 20% jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.backoff << min(attempt, 20)
	if d <= 0 || d > maxBackoff {
		d = maxBackoff
	}
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
