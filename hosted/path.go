package hosted

import "strings"

// splitPath splits a registry API path /v2/<name>/<kind>/<ref> whose kind is
// manifests or referrers. Other paths give an empty kind: distribution's router
// serves them. Names may contain the endpoint words, so the kind is the second
// to last component.
func splitPath(p string) (name, kind, ref string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", ""
	}
	head, ref := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(head, '/')
	if j < 0 {
		return "", "", ""
	}
	switch k := head[j+1:]; k {
	case "manifests", "referrers":
		return head[:j], k, ref
	}
	return "", "", ""
}
