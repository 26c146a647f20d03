package main

import "github.com/sirupsen/logrus"

// quietFormatter drops the per-request lines distribution's registry handlers
// (the hosted repositories) write to logrus's standard logger: the proxy's own
// access log already has one line per request. Their server errors (5xx) stay.
type quietFormatter struct{ logrus.Formatter }

func (f quietFormatter) Format(e *logrus.Entry) ([]byte, error) {
	switch e.Message {
	case "response completed":
		return nil, nil
	case "response completed with error":
		if status, _ := e.Data["http.response.status"].(int); status < 500 {
			return nil, nil
		}
	}
	return f.Formatter.Format(e)
}
