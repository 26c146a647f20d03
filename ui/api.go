package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
)

// apiError is an error answer of the mirroring API: its status, DTR-style
// code and message.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// callAPI calls the mirroring API in process as the session's admin and
// decodes a JSON answer into out (when not nil). An error answer is an
// *apiError.
func (c *Console) callAPI(ctx context.Context, s session, method, path string, body, out any) error {
	if c.opts.API == nil {
		return &apiError{http.StatusNotFound, "NO_API", "this server has no hosted repositories, so no mirroring"}
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("ui: encoding an API request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(asAdmin(ctx, s), method, "/api/v0"+path, rd)
	if err != nil {
		return fmt.Errorf("ui: API request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	c.opts.API.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		var eb struct {
			Errors []struct{ Code, Message string }
		}
		ae := &apiError{Status: rec.Code, Code: "UNKNOWN", Message: strings.TrimSpace(rec.Body.String())}
		if json.Unmarshal(rec.Body.Bytes(), &eb) == nil && len(eb.Errors) > 0 {
			ae.Code, ae.Message = eb.Errors[0].Code, eb.Errors[0].Message
		}
		return ae
	}
	if out != nil && rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			return fmt.Errorf("ui: decoding the API's answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}
