package upstream

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Names are checked before they are put into a URL, so that a caller's bug
// cannot turn into a request for another path (".."), another query ("?") or
// another host.

const (
	maxRepoLength = 255
	maxTagLength  = 128
)

// validateRepo checks an OCI repository name: slash-separated components of
// lower-case letters and digits joined by '.', '_', '__' or runs of '-'.
func validateRepo(repo string) error {
	if repo == "" || len(repo) > maxRepoLength {
		return fmt.Errorf("invalid repository name %q", repo)
	}
	for _, comp := range strings.Split(repo, "/") {
		if !validComponent(comp) {
			return fmt.Errorf("invalid repository name %q", repo)
		}
	}
	return nil
}

func validComponent(s string) bool {
	if s == "" || !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case isLowerAlnum(b), b == '-':
		case b == '.' || b == '_':
			// '.' and '_' stand alone (or '__'), between alphanumerics.
			next := s[i+1]
			if !isLowerAlnum(s[i-1]) || (!isLowerAlnum(next) && !(b == '_' && next == '_' && isLowerAlnum(s[i+2]))) {
				return false
			}
			if b == '_' && next == '_' {
				i++
			}
		default:
			return false
		}
	}
	return true
}

func isLowerAlnum(b byte) bool { return ('a' <= b && b <= 'z') || ('0' <= b && b <= '9') }

// validateRef checks a tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) or a digest.
func validateRef(ref string) error {
	if strings.Contains(ref, ":") {
		if _, err := digest.Parse(ref); err != nil {
			return fmt.Errorf("invalid digest %q: %w", ref, err)
		}
		return nil
	}
	if ref == "" || len(ref) > maxTagLength || ref[0] == '.' || ref[0] == '-' {
		return fmt.Errorf("invalid tag %q", ref)
	}
	for i := 0; i < len(ref); i++ {
		if b := ref[i]; !isTagByte(b) {
			return fmt.Errorf("invalid tag %q", ref)
		}
	}
	return nil
}

func isTagByte(b byte) bool {
	return ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9') ||
		b == '_' || b == '.' || b == '-'
}

func validateRepoRef(repo, ref string) error {
	if err := validateRepo(repo); err != nil {
		return err
	}
	return validateRef(ref)
}

func validateRepoDigest(repo string, dgst digest.Digest) error {
	if err := validateRepo(repo); err != nil {
		return err
	}
	if err := dgst.Validate(); err != nil {
		return fmt.Errorf("invalid digest %q: %w", dgst, err)
	}
	return nil
}

// validateSubpath checks the path after /v2/<repo>/ given to Get: non-empty
// segments of letters, digits and "._:-", none of them "." or "..".
func validateSubpath(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid path %q", path)
		}
		for i := 0; i < len(seg); i++ {
			if b := seg[i]; !isTagByte(b) && b != ':' {
				return fmt.Errorf("invalid path %q", path)
			}
		}
	}
	return nil
}
