package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// statusClientClosed is nginx's 499: the client closed the connection first.
const statusClientClosed = 499

// errNotFound answers a path that is no registry API endpoint.
var errNotFound = &httpError{status: http.StatusNotFound,
	err: errcode.ErrorCodeUnsupported.WithMessage("no such registry API endpoint")}

// httpError is an errcode with a status other than its descriptor's.
type httpError struct {
	status int
	err    errcode.Error
	header http.Header
}

func (e *httpError) Error() string { return e.err.Error() }

func withStatus(status int, code errcode.ErrorCode, msg string) *httpError {
	return &httpError{status: status, err: code.WithMessage(msg)}
}

// writeError writes err as a registry errcode JSON body with its status. Nothing
// local (paths, stack traces) reaches the client: unexpected errors become a
// generic 500 and are logged by the caller.
func writeError(w http.ResponseWriter, r *http.Request, k kind, err error) {
	he := classify(k, err)
	for name, v := range he.header {
		w.Header()[name] = v
	}
	body, _ := json.Marshal(errcode.Errors{he.err})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(he.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// classify maps an error from routing, the cache, the store or the upstream to the
// status and errcode a registry client expects.
func classify(k kind, err error) *httpError {
	var he *httpError
	var ee errcode.Error
	var ec errcode.ErrorCode
	var ue *upstream.Error
	var ae *auth.Error
	switch {
	case errors.As(err, &ae):
		return &httpError{status: ae.Status(), err: ae.ErrCode(), header: ae.Header()}
	case errors.As(err, &he):
		return he
	case errors.As(err, &ee):
		return &httpError{status: ee.Code.Descriptor().HTTPStatusCode, err: ee}
	case errors.As(err, &ec):
		return &httpError{status: ec.Descriptor().HTTPStatusCode, err: ec.WithMessage(ec.Message())}
	case errors.Is(err, storage.ErrNotFound):
		return notFound(k, "not found")
	case errors.As(err, &ue):
		return fromUpstream(k, ue)
	case errors.Is(err, upstream.ErrManifestTooLarge):
		return withStatus(http.StatusBadGateway, errcode.ErrorCodeManifestInvalid, "upstream manifest exceeds the size limit")
	case errors.Is(err, cache.ErrDigestMismatch):
		return withStatus(http.StatusBadGateway, errcode.ErrorCodeDigestInvalid, "upstream content does not match its digest; not served")
	case errors.Is(err, cache.ErrSizeMismatch):
		return withStatus(http.StatusBadGateway, errcode.ErrorCodeSizeInvalid, "upstream body length does not match; not served")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer, but the log and the
		// metrics should not call it a server fault.
		return withStatus(statusClientClosed, errcode.ErrorCodeUnknown, "client closed the request")
	case errors.Is(err, storage.ErrUnavailable):
		return withStatus(http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable, "storage backend unavailable")
	case isTimeout(err):
		return withStatus(http.StatusGatewayTimeout, errcode.ErrorCodeUnavailable, "upstream timed out")
	case isNetwork(err):
		return withStatus(http.StatusBadGateway, errcode.ErrorCodeUnavailable, "upstream unreachable")
	}
	return withStatus(http.StatusInternalServerError, errcode.ErrorCodeUnknown, "internal error")
}

func notFound(k kind, msg string) *httpError {
	code := errcode.ErrorCodeNameUnknown
	switch k {
	case kindManifest:
		code = errcode.ErrorCodeManifestUnknown
	case kindBlob:
		code = errcode.ErrorCodeBlobUnknown
	}
	return withStatus(http.StatusNotFound, code, msg)
}

// fromUpstream keeps the upstream's own code and message where a client can act on
// them, and never forwards its auth challenge: credentials are the proxy's business.
func fromUpstream(k kind, ue *upstream.Error) *httpError {
	msg := "upstream: " + http.StatusText(ue.StatusCode)
	if len(ue.Errors) > 0 && ue.Errors[0].Message != "" {
		msg = "upstream: " + ue.Errors[0].Message
	}
	switch {
	case ue.StatusCode == http.StatusNotFound:
		he := notFound(k, msg)
		if len(ue.Errors) > 0 {
			switch ue.Errors[0].Code {
			case "NAME_UNKNOWN":
				he.err = errcode.ErrorCodeNameUnknown.WithMessage(msg)
			case "MANIFEST_UNKNOWN":
				he.err = errcode.ErrorCodeManifestUnknown.WithMessage(msg)
			case "BLOB_UNKNOWN":
				he.err = errcode.ErrorCodeBlobUnknown.WithMessage(msg)
			}
		}
		return he
	case ue.StatusCode == http.StatusUnauthorized || ue.StatusCode == http.StatusForbidden:
		return withStatus(http.StatusForbidden, errcode.ErrorCodeDenied, msg)
	case ue.StatusCode == http.StatusTooManyRequests:
		he := withStatus(http.StatusTooManyRequests, errcode.ErrorCodeTooManyRequests, msg)
		if ue.RetryAfter > 0 {
			he.header = http.Header{"Retry-After": {strconv.Itoa(int(ue.RetryAfter.Seconds()))}}
		}
		return he
	case ue.StatusCode == http.StatusGatewayTimeout:
		return withStatus(http.StatusGatewayTimeout, errcode.ErrorCodeUnavailable, msg)
	case ue.StatusCode >= 500:
		return withStatus(http.StatusBadGateway, errcode.ErrorCodeUnavailable, msg)
	}
	return withStatus(http.StatusBadGateway, errcode.ErrorCodeUnknown, msg)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, upstream.ErrStalled) ||
		(errors.As(err, &ne) && ne.Timeout())
}

func isNetwork(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

// errUnsupported answers writes and unknown methods: the cache is read-only.
var errUnsupported = withStatus(http.StatusMethodNotAllowed, errcode.ErrorCodeUnsupported,
	"this repository is a read-only cache: push, patch and delete are not supported")
