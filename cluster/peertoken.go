package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Peer tokens authenticate one replica's request for another's fill in
// progress (GET <peerurl>/_proxy/fills/<digest>). A token is
// "<expiry unix seconds>.<hex HMAC-SHA256 of digest and expiry>", keyed by
// http.secret, which every replica behind one load balancer shares. It names
// one digest and lives PeerTokenTTL: a token seen in a log or on the wire is
// worth one blob for a minute, and the blob is content-addressed anyway.
const (
	// PeerTokenTTL is how long a peer token is accepted after it was made.
	PeerTokenTTL = time.Minute
	// peerClockSkew is how far ahead of the verifier's clock a signer's may
	// be: a token expiring later than now+TTL+skew is refused.
	peerClockSkew = 30 * time.Second
)

// PeerFillPath is the internal route under which a replica serves its fills
// in progress to the others: GET <peerurl>/_proxy/fills/<digest>.
const PeerFillPath = "/_proxy/fills/"

// PeerTokenHeader carries the peer token of a request to PeerFillPath.
const PeerTokenHeader = "Ocimirror-Peer-Token"

// ErrPeerToken reports a peer token that is malformed, forged, for another
// digest or expired.
var ErrPeerToken = errors.New("invalid peer token")

// PeerSigner makes and checks peer tokens with a key derived from the shared
// secret (domain-separated, so a peer token is never valid for another use of
// http.secret, nor the reverse).
type PeerSigner struct{ key []byte }

// NewPeerSigner returns a signer keyed by secret (config http.secret).
func NewPeerSigner(secret string) *PeerSigner {
	sum := sha256.Sum256([]byte("ocimirror peer fills\x00" + secret))
	return &PeerSigner{key: sum[:]}
}

// Sign returns a token for dgst valid until now+PeerTokenTTL.
func (s *PeerSigner) Sign(dgst string, now time.Time) string {
	exp := now.Add(PeerTokenTTL).Unix()
	return strconv.FormatInt(exp, 10) + "." + hex.EncodeToString(s.mac(dgst, exp))
}

// Verify checks that token was made by a holder of the secret for dgst and
// is still valid at now. The MAC is compared in constant time.
func (s *PeerSigner) Verify(dgst, token string, now time.Time) error {
	expStr, macHex, ok := strings.Cut(token, ".")
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("%w: malformed", ErrPeerToken)
	}
	mac, err := hex.DecodeString(macHex)
	if err != nil || !hmac.Equal(mac, s.mac(dgst, exp)) {
		return fmt.Errorf("%w: signature does not match", ErrPeerToken)
	}
	if now.Unix() > exp {
		return fmt.Errorf("%w: expired %s ago", ErrPeerToken, now.Sub(time.Unix(exp, 0)).Round(time.Second))
	}
	if time.Unix(exp, 0).After(now.Add(PeerTokenTTL + peerClockSkew)) {
		return fmt.Errorf("%w: expiry too far ahead", ErrPeerToken)
	}
	return nil
}

func (s *PeerSigner) mac(dgst string, exp int64) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(dgst + "\n" + strconv.FormatInt(exp, 10)))
	return m.Sum(nil)
}
