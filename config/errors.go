package config

import (
	"fmt"
	"strings"
)

// MsgUnknownKey is the Msg of an Error about a key the configuration does
// not know.
const MsgUnknownKey = "unknown key"

// masked replaces the value of secret keys in errors.
const masked = "****"

// Error is a configuration error. Every error returned by Parse, Load and
// Validate is an *Error.
type Error struct {
	// Key is the dotted key the error is about ("proxy.ttl"); empty for
	// errors about the whole document.
	Key string
	// Value is the offending value, if relevant. It is "****" for keys named
	// password or secret and for storage credentials (see isSecretKey).
	Value string
	// Msg says what is wrong.
	Msg string
	// Env is the environment variable that set Key, if one did.
	Env string
	// Err is the underlying error, if any.
	Err error
}

// newError returns an Error about key, masking value if key is secret.
func newError(key, value, msg string) *Error {
	return &Error{Key: key, Value: maskValue(key, value), Msg: msg}
}

// Error formats e as `config: proxy.ttl="7days": invalid duration`,
// `config: unknown key "proxy.remoteur"` or, for a key set from the
// environment, `config: REGISTRY_PROXY_TTL: proxy.ttl="7days": ...`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.Env != "" {
		b.WriteString(e.Env + ": ")
	}
	value := maskValue(e.Key, e.Value)
	switch {
	case e.Key == "":
		b.WriteString(e.Msg)
	case e.Msg == MsgUnknownKey:
		fmt.Fprintf(&b, "%s %q", e.Msg, e.Key)
	case value != "":
		fmt.Fprintf(&b, "%s=%q: %s", e.Key, value, e.Msg)
	default:
		fmt.Fprintf(&b, "%s: %s", e.Key, e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// maskValue hides value if key names a secret.
func maskValue(key, value string) string {
	if value != "" && isSecretKey(key) {
		return masked
	}
	return value
}

// secretKeys are keys whose values are secret beyond those named password or
// secret: storage drivers' credentials.
var secretKeys = map[string]bool{"accountkey": true, "connectionstring": true, "private_key": true, "sessiontoken": true}

// isSecretKey reports whether the last segment of the dotted key names a
// secret.
func isSecretKey(key string) bool {
	last := strings.ToLower(key[strings.LastIndexByte(key, '.')+1:])
	return strings.Contains(last, "password") || strings.Contains(last, "secret") || secretKeys[last]
}

// parentKey returns the dotted key without its last segment.
func parentKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return ""
}

// joinKey appends name to the dotted key path.
func joinKey(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
