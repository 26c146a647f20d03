package upstream

import (
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults used when the corresponding option is not given.
const (
	defaultConnectTimeout        = 10 * time.Second
	defaultResponseHeaderTimeout = 30 * time.Second
	defaultStallTimeout          = 60 * time.Second
	defaultRetries               = 3
	defaultBackoff               = 250 * time.Millisecond
	defaultMaxManifestSize       = 4 << 20
	defaultUserAgent             = "ocimirror-proxy"
)

// options collects everything an Option can set. It is only read after New
// returns, so the Client never needs to lock it.
type options struct {
	username, password string
	caFile             string
	insecureSkipVerify bool
	authHosts          []string

	connectTimeout        time.Duration
	responseHeaderTimeout time.Duration
	stallTimeout          time.Duration

	retries int
	backoff time.Duration

	maxManifestSize int64
	logger          *logrus.Entry
	userAgent       string
	transport       http.RoundTripper

	// now is the clock used for token expiry; tests replace it.
	now func() time.Time
}

func defaultOptions() options {
	return options{
		connectTimeout:        defaultConnectTimeout,
		responseHeaderTimeout: defaultResponseHeaderTimeout,
		stallTimeout:          defaultStallTimeout,
		retries:               defaultRetries,
		backoff:               defaultBackoff,
		maxManifestSize:       defaultMaxManifestSize,
		logger:                logrus.NewEntry(logrus.StandardLogger()),
		userAgent:             defaultUserAgent,
		now:                   time.Now,
	}
}

// Option configures a Client built by New.
type Option func(*options)

// WithCredentials sets the username and password used for Basic challenges
// and for token requests to realms allowed to receive credentials (see
// WithAuthHosts). Without it every request is anonymous.
func WithCredentials(username, password string) Option {
	return func(o *options) { o.username, o.password = username, password }
}

// WithCAFile adds the PEM certificates in path to the system root pool, for
// upstreams served with a private CA. It only affects the transport built by
// New, not one given with WithTransport.
func WithCAFile(path string) Option {
	return func(o *options) { o.caFile = path }
}

// WithInsecureSkipVerify disables TLS certificate verification. It only
// affects the transport built by New, not one given with WithTransport.
func WithInsecureSkipVerify(skip bool) Option {
	return func(o *options) { o.insecureSkipVerify = skip }
}

// WithAuthHosts lists hosts, beyond the upstream's own hostname and
// registrable domain, that may receive credentials from token requests. An
// entry "host" matches any port, "host:port" only that port. Credentials are
// still never sent to such a host over plain http.
func WithAuthHosts(hosts ...string) Option {
	return func(o *options) { o.authHosts = append(o.authHosts, hosts...) }
}

// WithTimeouts bounds connection setup (dial and TLS handshake), the wait for
// response headers once a request is sent, and the time a body may go without
// yielding a byte (ErrStalled). Zero leaves the corresponding default
// (10s, 30s, 60s). The response-header timeout only applies to the transport
// built by New; the stall timeout applies always.
func WithTimeouts(connect, responseHeader, stall time.Duration) Option {
	return func(o *options) {
		if connect > 0 {
			o.connectTimeout = connect
		}
		if responseHeader > 0 {
			o.responseHeaderTimeout = responseHeader
		}
		if stall > 0 {
			o.stallTimeout = stall
		}
	}
}

// WithRetries sets how many times a GET or HEAD is retried after a
// connection error or a 5xx (default 3), and the first backoff (default
// 250ms, doubled on every retry, capped at 10s). A 429 or 503 with a
// Retry-After of at most 10s is retried after that wait; a longer one, or a
// 429 without Retry-After, fails at once with the *Error. Timeouts are not
// retried. Retries only happen before any byte of a body is handed to the
// caller. n <= 0 disables retries.
func WithRetries(n int, backoff time.Duration) Option {
	return func(o *options) {
		o.retries = max(n, 0)
		if backoff > 0 {
			o.backoff = backoff
		}
	}
}

// WithMaxManifestSize sets the largest manifest GetManifest accepts (default
// 4 MiB); larger ones fail with ErrManifestTooLarge.
func WithMaxManifestSize(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.maxManifestSize = n
		}
	}
}

// WithLogger sets the logger; the default is logrus's standard logger.
// Credentials and tokens are never logged.
func WithLogger(l *logrus.Entry) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithUserAgent sets the User-Agent sent upstream and to token realms.
func WithUserAgent(ua string) Option {
	return func(o *options) {
		if ua != "" {
			o.userAgent = ua
		}
	}
}

// WithTransport replaces the tuned *http.Transport New builds; meant for
// tests. WithCAFile, WithInsecureSkipVerify and the connect and
// response-header timeouts are then the transport's business.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// withClock replaces the clock used for token expiry (tests only).
func withClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}
