package storage

import (
	"path"

	"github.com/opencontainers/go-digest"
)

// The layout is distribution's (registry/storage/paths.go), so a data directory
// written by registry:2 in proxy mode is served as is and vice versa:
//
//	/docker/registry/v2/blobs/<alg>/<hex[:2]>/<hex>/data
//	/docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
//	/docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//	/docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//	/docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//
// Everything the proxy adds lives under /_proxy (spool files of fills in progress,
// later the scheduler index), outside distribution's tree.
const (
	v2Root    = "/docker/registry/v2"
	reposRoot = v2Root + "/repositories"
	spoolRoot = "/_proxy/spool"
)

func blobDataPath(d digest.Digest) string {
	hex := d.Encoded()
	return path.Join(v2Root, "blobs", d.Algorithm().String(), hex[:2], hex, "data")
}

func repoPath(repo string) string { return path.Join(reposRoot, repo) }

func layerLinkPath(repo string, d digest.Digest) string {
	return path.Join(repoPath(repo), "_layers", d.Algorithm().String(), d.Encoded(), "link")
}

func revisionLinkPath(repo string, d digest.Digest) string {
	return path.Join(repoPath(repo), "_manifests", "revisions", d.Algorithm().String(), d.Encoded(), "link")
}

func tagsPath(repo string) string { return path.Join(repoPath(repo), "_manifests", "tags") }

func tagCurrentPath(repo, tag string) string {
	return path.Join(tagsPath(repo), tag, "current", "link")
}

func tagIndexPath(repo, tag string, d digest.Digest) string {
	return path.Join(tagsPath(repo), tag, "index", d.Algorithm().String(), d.Encoded(), "link")
}
