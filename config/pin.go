package config

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Outside path.Match's metacharacters, a pinned repository pattern may hold
// what a stored repository name holds (lower case, a host's port), a tag
// pattern what a tag holds.
var (
	pinRepoChars = regexp.MustCompile(`^[a-z0-9._/:-]*$`)
	pinTagChars  = regexp.MustCompile(`^[A-Za-z0-9_.-]*$`)
	pinMeta      = strings.NewReplacer("*", "", "?", "", "[", "", "]", "", "^", "", `\`, "")
)

// maxTagLen is the reference grammar's limit on a tag.
const maxTagLen = 128

// ParsePin splits a proxy.pin entry into a repository pattern and a tag
// pattern (empty for a whole repository) and checks both. The tag is what
// follows the last ':' after the last '/', as in an image reference, so
// "localhost:5001/app" is a repository and "localhost:5001/app:v1" one of its
// tags.
func ParsePin(s string) (repo, tag string, err error) {
	repo = s
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		repo, tag = s[:i], s[i+1:]
		if err := checkPinTag(tag); err != nil {
			return "", "", err
		}
	}
	if err := checkPinRepo(repo); err != nil {
		return "", "", err
	}
	return repo, tag, nil
}

func checkPinRepo(repo string) error {
	switch {
	case repo == "":
		return errors.New("repository pattern must not be empty")
	case strings.Contains(repo, "@"):
		return errors.New("digests cannot be pinned: pin a repository or repo:tag")
	case strings.HasPrefix(repo, "/") || strings.HasSuffix(repo, "/") || strings.Contains(repo, "//"):
		return errors.New("repository pattern has an empty path component")
	case !validPattern(repo):
		return errors.New("repository pattern is not valid path.Match syntax")
	case !pinRepoChars.MatchString(pinMeta.Replace(repo)):
		return errors.New("repository pattern may hold only lower-case letters, digits, '.', '_', '-', '/', a host's ':port' and * ? [ ]")
	}
	return nil
}

func checkPinTag(tag string) error {
	switch {
	case tag == "":
		return errors.New("tag pattern after ':' must not be empty")
	case len(tag) > maxTagLen:
		return fmt.Errorf("tag pattern longer than %d characters", maxTagLen)
	case !validPattern(tag):
		return errors.New("tag pattern is not valid path.Match syntax")
	case !pinTagChars.MatchString(pinMeta.Replace(tag)):
		return errors.New("tag pattern may hold only letters, digits, '.', '_', '-' and * ? [ ]")
	}
	return nil
}

// validPattern reports whether p is path.Match syntax; Match checks the whole
// pattern even when it does not match.
func validPattern(p string) bool {
	_, err := path.Match(p, "")
	return err == nil
}

// validatePins checks every proxy.pin entry. With Docker Hub as the default
// upstream a one-component name matches nothing stored (official images are
// library/<name>), so it is refused rather than silently pinning nothing.
func (c *Config) validatePins() error {
	hosts := c.Proxy.DefaultHosts()
	hub := len(hosts) > 0 && IsDockerHub(hosts[0])
	for i, s := range c.Proxy.Pin {
		key := fmt.Sprintf("proxy.pin[%d]", i)
		repo, _, err := ParsePin(s)
		if err != nil {
			return newError(key, s, err.Error())
		}
		if hub && !strings.Contains(repo, "/") {
			return newError(key, s, fmt.Sprintf("matches no Docker Hub repository: names are stored with their namespace (library/%s for an official image)", repo))
		}
	}
	return nil
}
