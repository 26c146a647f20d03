package scheduler

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Kind is what an index entry stands for.
type Kind uint8

// The kinds of stored items. Their order is the order of deletion in an eviction
// pass: a tag goes before the manifest it names, a manifest before its layers.
const (
	KindTag      Kind = iota + 1 // a tag of a repository, pointing at a manifest digest
	KindManifest                 // a manifest revision linked in a repository
	KindBlob                     // a blob (layer or config) linked in a repository
)

func (k Kind) String() string {
	switch k {
	case KindTag:
		return "tag"
	case KindManifest:
		return "manifest"
	case KindBlob:
		return "blob"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Key identifies an entry: a blob or a manifest by (Repo, Digest), a tag by
// (Repo, Tag). A tag's Digest is the manifest it points at, not part of its identity.
type Key struct {
	Kind   Kind
	Repo   string
	Digest digest.Digest
	Tag    string
}

func (k Key) String() string {
	if k.Kind == KindTag {
		return fmt.Sprintf("tag %s:%s", k.Repo, k.Tag)
	}
	return fmt.Sprintf("%s %s@%s", k.Kind, k.Repo, k.Digest)
}

// validate reports a key the index cannot hold.
func (k Key) validate() error {
	switch {
	case k.Repo == "" || strings.IndexByte(k.Repo, 0) >= 0:
		return errors.New("invalid repository name")
	case k.Kind == KindTag && (k.Tag == "" || strings.IndexByte(k.Tag, 0) >= 0):
		return errors.New("invalid tag")
	case k.Kind != KindTag && k.Kind != KindManifest && k.Kind != KindBlob:
		return errors.New("invalid kind")
	}
	return k.Digest.Validate() // a tag's too: the manifest it points at
}

// id is a key's identity, usable as a map key: ref is the digest of a blob or
// manifest, the name of a tag.
type id struct {
	kind Kind
	repo string
	ref  string
}

func (k Key) id() id {
	if k.Kind == KindTag {
		return id{KindTag, k.Repo, k.Tag}
	}
	return id{k.Kind, k.Repo, string(k.Digest)}
}

// Entry is one stored item and when it was last pulled.
type Entry struct {
	Key
	Size       int64     // bytes of content; zero for a tag
	LastAccess time.Time // the last pull
	Expires    time.Time // LastAccess + the TTL of Repo; zero when its entries never expire
}

// On disk, an entry is one key/value pair in the entries bucket:
//
//	key:   kind letter ('t', 'm', 'b') | repository | 0x00 | digest or tag
//	value: last access (int64 Unix nanoseconds, big endian) | size (int64, big endian) |
//	       for a tag, the digest it points at
//
// Expiry is not stored: it is derived from the last access and the TTL in force
// for the entry's repository, so a changed TTL applies to every entry at the
// next start.
const valueHeader = 16

var kindLetters = [...]byte{KindTag: 't', KindManifest: 'm', KindBlob: 'b'}

func (i id) encode() []byte {
	b := make([]byte, 0, 2+len(i.repo)+len(i.ref))
	b = append(b, kindLetters[i.kind])
	b = append(b, i.repo...)
	b = append(b, 0)
	return append(b, i.ref...)
}

func decodeID(b []byte) (id, error) {
	if len(b) < 3 {
		return id{}, fmt.Errorf("entry key %q: too short", b)
	}
	var kind Kind
	for k, l := range kindLetters {
		if l != 0 && l == b[0] {
			kind = Kind(k)
		}
	}
	repo, ref, ok := strings.Cut(string(b[1:]), "\x00")
	if kind == 0 || !ok || repo == "" || ref == "" {
		return id{}, fmt.Errorf("entry key %q: malformed", b)
	}
	return id{kind, repo, ref}, nil
}

// record is an entry as it is written to disk.
type record struct {
	id     id
	target digest.Digest
	size   int64
	access int64
}

func (r record) value() []byte {
	v := make([]byte, valueHeader, valueHeader+len(r.target))
	binary.BigEndian.PutUint64(v[0:], uint64(r.access))
	binary.BigEndian.PutUint64(v[8:], uint64(r.size))
	if r.id.kind == KindTag {
		v = append(v, r.target...)
	}
	return v
}

func decodeRecord(k, v []byte) (record, error) {
	i, err := decodeID(k)
	if err != nil {
		return record{}, err
	}
	if len(v) < valueHeader {
		return record{}, fmt.Errorf("entry %q: value too short", k)
	}
	r := record{
		id:     i,
		access: int64(binary.BigEndian.Uint64(v[0:])),
		size:   int64(binary.BigEndian.Uint64(v[8:])),
		target: digest.Digest(i.ref),
	}
	if i.kind == KindTag {
		r.target = digest.Digest(v[valueHeader:])
	}
	if err := r.target.Validate(); err != nil || r.size < 0 {
		return record{}, fmt.Errorf("entry %q: malformed value", k)
	}
	return r, nil
}

// Identity names k's entry as a string, the same whatever its state (a tag's
// target is not part of it): what a shared copy of the index keys entries by.
// ParseIdentity reads it back.
func (k Key) Identity() string { return string(k.id().encode()) }

// ParseIdentity returns the key an Identity names; target is the digest a tag
// points at (ignored for a blob or manifest, whose digest is its identity).
func ParseIdentity(s string, target digest.Digest) (Key, error) {
	i, err := decodeID([]byte(s))
	if err != nil {
		return Key{}, err
	}
	k := Key{Kind: i.kind, Repo: i.repo, Digest: digest.Digest(i.ref)}
	if i.kind == KindTag {
		k.Tag, k.Digest = i.ref, target
	}
	if err := k.validate(); err != nil {
		return Key{}, fmt.Errorf("entry %q: %w", s, err)
	}
	return k, nil
}
