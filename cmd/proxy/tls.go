package main

import (
	"crypto/tls"
	"log"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/config"
)

func newTLSConfig(c config.TLS) *tls.Config {
	return &tls.Config{MinVersion: c.MinVersion()}
}

// newStdLogger routes net/http's own messages (TLS handshake errors and the like)
// to logrus at debug level: they are client noise, not proxy faults.
func newStdLogger(l *logrus.Entry) *log.Logger {
	return log.New(l.WriterLevel(logrus.DebugLevel), "", 0)
}
