package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// Error is a refusal from Authorize: the HTTP status, the headers that go with
// it (a WWW-Authenticate challenge, Retry-After) and the registry errcode for
// the body. It unwraps to that errcode.Error, so a writer that knows only
// errcode values still sends the right code and status (but not the headers);
// WriteError, or a writer that asks for Status and Header, sends all of it.
type Error struct {
	status int
	header http.Header
	code   errcode.Error
	cause  error // why, for logs; never sent to the client
}

func refuse(status int, header http.Header, code errcode.ErrorCode, cause error, format string, args ...any) *Error {
	return &Error{status: status, header: header, code: code.WithMessage(fmt.Sprintf(format, args...)), cause: cause}
}

// Error describes the refusal and its cause; it never contains credentials.
func (e *Error) Error() string {
	if e.cause != nil {
		return e.code.Error() + " (" + e.cause.Error() + ")"
	}
	return e.code.Error()
}

// Status is the HTTP status to answer with: 401, 403 or 429.
func (e *Error) Status() int { return e.status }

// Header holds the headers to add to the answer (may be nil). Callers must not
// modify it.
func (e *Error) Header() http.Header { return e.header }

// ErrCode is the errcode for the body: UNAUTHORIZED, DENIED or TOOMANYREQUESTS.
func (e *Error) ErrCode() errcode.Error { return e.code }

// Unwrap returns the errcode and, if any, the cause.
func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.code, e.cause}
	}
	return []error{e.code}
}

// WriteError answers a request with err: an *Error with its status, headers
// and errcode body; any other error as a 500 UNKNOWN that says nothing more
// (the caller logs it). HEAD answers get no body.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *Error
	if !errors.As(err, &ae) {
		ae = &Error{status: http.StatusInternalServerError, code: errcode.ErrorCodeUnknown.WithMessage("internal error")}
	}
	for name, v := range ae.header {
		w.Header()[name] = append([]string(nil), v...)
	}
	body, _ := json.Marshal(errcode.Errors{ae.code})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(ae.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
