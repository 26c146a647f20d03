package upstream

import (
	"sort"
	"strings"
)

// challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 7235): a scheme followed either by a token68 or by auth-params.
type challenge struct {
	Scheme  string            // lower-cased, e.g. "bearer", "basic"
	Params  map[string]string // lower-cased names, unquoted values
	Token68 string            // e.g. the blob of "Negotiate abc=="; rarely used
}

// parseChallenges parses a WWW-Authenticate header value holding one or more
// challenges, e.g.
//
//	Bearer realm="https://auth.docker.io/token",service="registry.docker.io"
//	Basic realm="x", Bearer realm="https://a/b?c=d,e"
//
// It is lenient: unquoted values may hold any character but comma and white
// space, an unterminated quoted string runs to the end, and bytes that cannot
// start a challenge are skipped. The first occurrence of a repeated parameter
// wins. It never fails; garbage yields fewer challenges.
func parseChallenges(header string) []challenge {
	p := challengeParser{s: header}
	var out []challenge
	for !p.done() {
		start := p.pos
		p.skip(isSepByte)
		scheme := p.take(isTchar)
		if scheme == "" {
			if p.pos == start && !p.done() {
				p.pos++ // not a challenge: skip the offending byte
			}
			continue
		}
		out = append(out, p.challengeBody(strings.ToLower(scheme)))
	}
	return out
}

// challengeParser is a cursor over a header value. Every method either
// consumes bytes or reports that it did not, so parsing is linear.
type challengeParser struct {
	s   string
	pos int
}

func (p *challengeParser) done() bool { return p.pos >= len(p.s) }

func (p *challengeParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.pos]
}

// skip advances over bytes satisfying f.
func (p *challengeParser) skip(f func(byte) bool) {
	for !p.done() && f(p.s[p.pos]) {
		p.pos++
	}
}

// take returns the run of bytes satisfying f at the cursor.
func (p *challengeParser) take(f func(byte) bool) string {
	start := p.pos
	p.skip(f)
	return p.s[start:p.pos]
}

// challengeBody parses what follows a scheme: a token68 or auth-params.
func (p *challengeParser) challengeBody(scheme string) challenge {
	c := challenge{Scheme: scheme, Params: map[string]string{}}
	p.skip(isSpaceByte)
	if t, ok := p.token68(); ok {
		c.Token68 = t
		return c
	}
	for !p.done() {
		save := p.pos
		p.skip(isSepByte)
		name := p.take(isTchar)
		p.skip(isSpaceByte)
		if name == "" || p.peek() != '=' {
			p.pos = save // the start of the next challenge, or junk
			break
		}
		p.pos++ // '='
		p.skip(isSpaceByte)
		value := p.value()
		name = strings.ToLower(name)
		if _, dup := c.Params[name]; !dup {
			c.Params[name] = value
		}
	}
	return c
}

// token68 consumes a token68 if one stands at the cursor followed by the end
// of the challenge (end of input or a comma).
func (p *challengeParser) token68() (string, bool) {
	i := p.pos
	for i < len(p.s) && isToken68Byte(p.s[i]) {
		i++
	}
	if i == p.pos {
		return "", false
	}
	for i < len(p.s) && p.s[i] == '=' {
		i++
	}
	end := i
	for i < len(p.s) && isSpaceByte(p.s[i]) {
		i++
	}
	if i < len(p.s) && p.s[i] != ',' {
		return "", false
	}
	t := p.s[p.pos:end]
	p.pos = end
	return t, true
}

// value consumes a quoted string (with backslash escapes) or a bare value.
func (p *challengeParser) value() string {
	if p.peek() != '"' {
		return p.take(func(b byte) bool { return b != ',' && !isSpaceByte(b) && b != '"' })
	}
	p.pos++ // opening quote
	var b strings.Builder
	for !p.done() {
		ch := p.s[p.pos]
		p.pos++
		switch {
		case ch == '"':
			return b.String()
		case ch == '\\' && !p.done():
			b.WriteByte(p.s[p.pos])
			p.pos++
		default:
			b.WriteByte(ch)
		}
	}
	return b.String() // unterminated: take what there is
}

// String renders c in a canonical form that parseChallenges reads back to an
// equal challenge: lower-case scheme, sorted parameters, all values quoted.
func (c challenge) String() string {
	if c.Token68 != "" || len(c.Params) == 0 {
		if c.Token68 == "" {
			return c.Scheme
		}
		return c.Scheme + " " + c.Token68
	}
	names := make([]string, 0, len(c.Params))
	for n := range c.Params {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + quote(c.Params[n])
	}
	return c.Scheme + " " + strings.Join(parts, ", ")
}

// quote renders s as a quoted-string, escaping quotes and backslashes.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func isSpaceByte(b byte) bool { return b == ' ' || b == '\t' }

func isSepByte(b byte) bool { return b == ',' || isSpaceByte(b) }

// isTchar reports whether b may appear in an RFC 7230 token.
func isTchar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// isToken68Byte reports whether b may appear in a token68 before its '='
// padding.
func isToken68Byte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", b) >= 0
}
