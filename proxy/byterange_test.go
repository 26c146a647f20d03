package proxy

import (
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		header        string
		size          int64
		start, length int64
		ok, invalid   bool
	}{
		{header: "", size: 10},
		{header: "bytes=0-0", size: 10, start: 0, length: 1, ok: true},
		{header: "bytes=0-9", size: 10, start: 0, length: 10, ok: true},
		{header: "bytes=2-", size: 10, start: 2, length: 8, ok: true},
		{header: "bytes=5-100", size: 10, start: 5, length: 5, ok: true},
		{header: "bytes=-3", size: 10, start: 7, length: 3, ok: true},
		{header: "bytes=-30", size: 10, start: 0, length: 10, ok: true},
		{header: "bytes=0-1,4-5", size: 10},            // several ranges: whole blob
		{header: "items=0-1", size: 10},                // other unit: whole blob
		{header: "bytes=10-", size: 10, invalid: true}, // starts past the end
		{header: "bytes=10-20", size: 10, invalid: true},
		{header: "bytes=5-2", size: 10, invalid: true},
		{header: "bytes=-0", size: 10, invalid: true},
		{header: "bytes=", size: 10, invalid: true},
		{header: "bytes=a-b", size: 10, invalid: true},
		{header: "bytes=-", size: 10, invalid: true},
		{header: "bytes=+1-2", size: 10, invalid: true},
		{header: "bytes=1-+2", size: 10, invalid: true},
		{header: "bytes=99999999999999999999-", size: 10, invalid: true},
		{header: "bytes=0-", size: 0, invalid: true},
		{header: "bytes=-1", size: 0, invalid: true},
	}
	for _, tt := range tests {
		r, ok, err := parseRange(tt.header, tt.size)
		if (err != nil) != tt.invalid {
			t.Errorf("parseRange(%q, %d) error %v, want invalid=%v", tt.header, tt.size, err, tt.invalid)
			continue
		}
		if ok != tt.ok || (ok && (r.start != tt.start || r.length != tt.length)) {
			t.Errorf("parseRange(%q, %d) = %+v %v, want start %d length %d ok %v",
				tt.header, tt.size, r, ok, tt.start, tt.length, tt.ok)
		}
	}
}

// FuzzParseRange checks that an accepted range always lies inside the blob.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-5", "bytes=3-", "bytes=1-2,3-4", "bytes=9-1", ""} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 { // math.MinInt64
			return
		}
		r, ok, err := parseRange(header, size)
		if err != nil || !ok {
			return
		}
		if r.start < 0 || r.length <= 0 || r.start+r.length > size {
			t.Fatalf("parseRange(%q, %d) = %+v: outside the blob", header, size, r)
		}
	})
}
