package scheduler

import "path"

// Pin is one pinning rule (an entry of proxy.pin). Repo is a path.Match pattern
// over the repository name as stored ("library/alpine", "ghcr.io/owner/app",
// "library/*"); Tag, if set, a path.Match pattern over its tags ("v1.*").
type Pin struct {
	Repo string
	Tag  string // empty: the whole repository
}

// Pinned returns a predicate for WithPinned that keeps:
//   - for a Pin without Tag, every entry of the matching repositories;
//   - for a Pin with Tag, the matching tags, and every manifest and blob link of
//     the matching repositories.
//
// A tag needs more than its manifest: an index's platform manifests and every
// manifest's layers and config, which the index cannot tell apart from the rest
// of the repository (it holds no manifest references). So pinning a tag keeps
// its repository's links, and only the tags that match no pin are evictable:
// a pull of a pinned tag never misses, at the cost of keeping the content of the
// repository's other tags too. A pattern that is not valid path.Match syntax
// matches nothing (config validation rejects it).
func Pinned(pins ...Pin) func(Key) bool {
	pins = append([]Pin(nil), pins...)
	return func(k Key) bool {
		for _, p := range pins {
			if !match(p.Repo, k.Repo) {
				continue
			}
			if p.Tag == "" || k.Kind != KindTag || match(p.Tag, k.Tag) {
				return true
			}
		}
		return false
	}
}

func match(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return ok && err == nil
}
