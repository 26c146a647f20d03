package storage

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// secretParams are the driver parameters that hold credentials: s3's secret
// key and session token, azure's account key and connection string (which
// embeds the key).
var secretParams = []string{"secretkey", "sessiontoken", "accountkey", "connectionstring"}

// secretCredentials are the keys of a credentials mapping that hold secrets:
// azure's client secret, a gcs service account's private key and its id.
var secretCredentials = []string{"secret", "private_key", "private_key_id"}

// minSecretLine is the shortest line of a multi-line secret (a PEM key) that
// redact replaces on its own: shorter ones ("-----END") are not secret.
const minSecretLine = 16

// redact replaces every credential of params in err's text by "****": driver
// and SDK errors are logged, credentials never are.
func redact(err error, params map[string]any) error {
	msg := err.Error()
	out := msg
	for _, s := range secretValues(params) {
		out = strings.ReplaceAll(out, s, "****")
	}
	if out == msg {
		return err
	}
	return errors.New(out)
}

// secretValues lists the secret strings of params, longest first so that a
// whole key is replaced before its lines: each value, its JSON-escaped form,
// and each long line of a multi-line value.
func secretValues(params map[string]any) []string {
	var raw []string
	for _, k := range secretParams {
		raw = append(raw, stringParam(params[k]))
	}
	for _, k := range secretCredentials {
		raw = append(raw, stringParam(lookup(params["credentials"], k)))
	}
	var out []string
	for _, v := range raw {
		if v == "" {
			continue
		}
		out = append(out, v, strings.ReplaceAll(v, "\n", `\n`))
		for _, line := range strings.Split(v, "\n") {
			if len(strings.TrimSpace(line)) >= minSecretLine {
				out = append(out, strings.TrimSpace(line))
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// lookup returns m[key] for a mapping as YAML decoders give it
// (map[string]any, or map[any]any from distribution's configuration).
func lookup(m any, key string) any {
	switch m := m.(type) {
	case map[string]any:
		return m[key]
	case map[any]any:
		return m[key]
	}
	return nil
}

// stringParam is a parameter's value as text, "" when it is unset.
func stringParam(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
