package scheduler

import (
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
)

// victim is an entry an eviction pass means to delete, as it was when planned.
type victim struct {
	Entry
	access int64 // an access after planning cancels the eviction
}

// planner picks victims under Index.mu.
type planner struct {
	ix        *Index
	skip      map[digest.Digest]bool // content in use: left alone this pass
	isPinned  func(Key) bool         // entries never evicted; nil: none
	chosen    map[*entry]bool
	held      map[*entry]bool // left alone because their content is in use
	pinned    map[*entry]bool // left alone because they are pinned
	list      []*entry
	tags      map[id]int            // manifest id -> chosen tags pointing at it
	links     map[digest.Digest]int // content -> chosen blob and manifest entries linking it
	manifests map[digest.Digest]bool
	freed     int64 // bytes of content whose every link is chosen
}

// plan picks what an eviction pass at now deletes, in deletion order: tags, then
// manifests, then blob links. Expired entries first; then, while the content left
// would exceed maxBytes (0: no cap), the least recently used ones, until it would
// be at most low. Content in skip is left alone, and so are pinned entries and a
// manifest that a tag which stays points at. The Stats tell what deleting the
// victims would do; Skipped counts the entries held for content in skip.
func (ix *Index) plan(now time.Time, maxBytes, low int64, skip map[digest.Digest]bool, pinned func(Key) bool) ([]victim, Stats) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	p := planner{
		ix: ix, skip: skip, isPinned: pinned,
		chosen:    make(map[*entry]bool),
		held:      make(map[*entry]bool),
		pinned:    make(map[*entry]bool),
		tags:      make(map[id]int),
		links:     make(map[digest.Digest]int),
		manifests: make(map[digest.Digest]bool),
	}
	expired := ix.expired(now)
	// Tags first, so that a manifest whose tags all expired may go with them.
	for _, kind := range []Kind{KindTag, KindManifest, KindBlob} {
		for _, x := range expired {
			if x.id.kind == kind {
				p.take(x)
			}
		}
	}
	if maxBytes > 0 && ix.total-p.freed > maxBytes {
		// Ends at the back of the lists when pinned or held content keeps the
		// total above low: the pass then does what it can.
		ix.byAccess(func(x *entry) bool {
			p.take(x)
			return ix.total-p.freed > low
		})
	}
	slices.SortStableFunc(p.list, func(a, b *entry) int { return p.rank(a) - p.rank(b) })
	vs := make([]victim, len(p.list))
	for i, x := range p.list {
		vs[i] = victim{Entry: ix.entry(x), access: x.access}
	}
	return vs, p.stats()
}

// rank orders victims for deletion: tags, then the manifests they pointed at,
// then other manifests, then blob links. A tagged manifest is usually the root
// of an image (an index), the untagged ones its platform manifests: deleting
// roots first means a pass cut short (a crash) leaves no index whose platform
// manifests are gone, as deleting links before content leaves no manifest
// whose layers are gone.
func (p *planner) rank(x *entry) int {
	r := 2 * int(x.id.kind)
	if x.id.kind == KindManifest && p.ix.tagRefs[x.id] == 0 {
		r++
	}
	return r
}

// take chooses x unless it must stay.
func (p *planner) take(x *entry) {
	if p.chosen[x] || p.pinned[x] {
		return
	}
	switch {
	case p.isPinned != nil && p.isPinned(x.key()):
		p.pinned[x] = true
		return
	case x.id.kind == KindTag:
		p.tags[manifestOf(x)]++
	case p.skip[x.target]:
		p.held[x] = true
		return
	case x.id.kind == KindManifest && p.ix.tagRefs[x.id] > p.tags[x.id]:
		return // deleting it would break a tag that stays
	default:
		p.links[x.target]++
		p.manifests[x.target] = p.manifests[x.target] || x.id.kind == KindManifest
		if c := p.ix.contents[x.target]; p.links[x.target] == c.refs {
			p.freed += c.size
		}
	}
	p.chosen[x] = true
	p.list = append(p.list, x)
}

// stats counts the chosen entries by kind and the content they free.
func (p *planner) stats() Stats {
	st := Stats{Skipped: len(p.held), Pinned: len(p.pinned)}
	for _, x := range p.list {
		st.count(x.id.kind)
	}
	for d, n := range p.links {
		if c := p.ix.contents[d]; n == c.refs {
			st.freed(c.size, p.manifests[d])
		}
	}
	return st
}

// count counts a removed entry of kind k.
func (st *Stats) count(k Kind) {
	switch k {
	case KindTag:
		st.Tags++
	case KindManifest:
		st.Manifests++
	default:
		st.Links++
	}
}

// freed counts deleted content of size bytes, a manifest's or a blob's.
func (st *Stats) freed(size int64, manifest bool) {
	st.Blobs++
	st.Bytes += size
	if manifest {
		st.ManifestBlobs++
		st.ManifestBytes += size
	}
}

// current reports whether v is still as planned: present, not accessed since,
// pointing at the same content.
func (ix *Index) current(v victim) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.isCurrent(v)
}

func (ix *Index) isCurrent(v victim) bool {
	x, ok := ix.entries[v.id()]
	return ok && x.access == v.access && x.target == v.Digest
}

// liveRefs returns how many entries link d besides the victims in vs.
func (ix *Index) liveRefs(d digest.Digest, vs []victim) int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n := ix.contents[d].refs
	for _, v := range vs {
		if ix.isCurrent(v) {
			n--
		}
	}
	return n
}

// drop removes v from memory if it is still as planned; the next flush deletes it
// on disk.
func (ix *Index) drop(v victim) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !ix.isCurrent(v) {
		return false
	}
	x := ix.entries[v.id()]
	ix.forget(x)
	ix.shareRemoval(x)
	return true
}
