package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPeerToken(t *testing.T) {
	const d = "sha256:" + "ab12"
	s := NewPeerSigner("shared secret")
	now := time.Unix(1_700_000_000, 0)
	tok := s.Sign(d, now)
	if err := s.Verify(d, tok, now.Add(59*time.Second)); err != nil {
		t.Fatalf("a fresh token was refused: %v", err)
	}
	exp, mac, _ := strings.Cut(tok, ".")
	flipped := exp + "." + map[bool]string{true: "0", false: "1"}[mac[0] != '0'] + mac[1:]
	for _, c := range []struct{ name, dgst, tok, secret string }{
		{"expired", d, tok, "shared secret"},
		{"other digest", "sha256:cd34", tok, "shared secret"},
		{"other secret", d, tok, "another secret"},
		{"forged mac", d, flipped, "shared secret"},
		{"malformed", d, "garbage", "shared secret"},
		{"empty", d, "", "shared secret"},
		{"far future", d, NewPeerSigner("shared secret").Sign(d, now.Add(time.Hour)), "shared secret"},
	} {
		at := now
		if c.name == "expired" {
			at = now.Add(PeerTokenTTL + time.Second)
		}
		if err := NewPeerSigner(c.secret).Verify(c.dgst, c.tok, at); !errors.Is(err, ErrPeerToken) {
			t.Errorf("%s: Verify = %v, want ErrPeerToken", c.name, err)
		}
	}
}
