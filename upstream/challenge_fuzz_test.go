package upstream

import (
	"strings"
	"testing"
)

// FuzzParseChallenges checks that parseChallenges never panics and that its
// output is well formed and canonical: schemes and parameter names are
// non-empty lower-case tokens, a challenge has a token68 or parameters but not
// both, and rendering the challenges and parsing them again gives them back.
func FuzzParseChallenges(f *testing.F) {
	for _, h := range realChallenges {
		f.Add(h)
	}
	f.Add(`Bearer realm="a\"b\\c"`)
	f.Add("Negotiate YWJjZA==, Basic realm=x")
	f.Add(`Bearer realm="unterminated`)
	f.Add(`,,, =x, "q" Basic`)
	f.Fuzz(func(t *testing.T, header string) {
		chs := parseChallenges(header)
		if len(chs) > len(header) {
			t.Fatalf("%d challenges from %d bytes", len(chs), len(header))
		}
		rendered := make([]string, len(chs))
		for i, ch := range chs {
			checkChallenge(t, ch)
			rendered[i] = ch.String()
		}
		again := parseChallenges(strings.Join(rendered, ", "))
		if !equalChallenges(chs, again) {
			t.Fatalf("round trip of %q:\n first %+v\nrender %q\nsecond %+v", header, chs, rendered, again)
		}
	})
}

func checkChallenge(t *testing.T, ch challenge) {
	t.Helper()
	if !isLowerToken(ch.Scheme) {
		t.Fatalf("scheme %q is not a lower-case token", ch.Scheme)
	}
	if ch.Token68 != "" && len(ch.Params) > 0 {
		t.Fatalf("challenge %+v has both a token68 and parameters", ch)
	}
	for name := range ch.Params {
		if !isLowerToken(name) {
			t.Fatalf("parameter name %q is not a lower-case token", name)
		}
	}
	t68 := strings.TrimRight(ch.Token68, "=")
	for i := 0; i < len(t68); i++ {
		if !isToken68Byte(t68[i]) {
			t.Fatalf("token68 %q has byte %q", ch.Token68, t68[i])
		}
	}
	if ch.Token68 != "" && t68 == "" {
		t.Fatalf("token68 %q is only padding", ch.Token68)
	}
}

func isLowerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) || ('A' <= s[i] && s[i] <= 'Z') {
			return false
		}
	}
	return true
}
