package scheduler

import (
	"fmt"
	"testing"
)

// BenchmarkTouch measures a cache hit's cost to the index: a lookup, a move to
// the back of the list and, once per flush interval, a place in the dirty queue.
func BenchmarkTouch(b *testing.B) {
	ix, _ := openTest(b, WithFlushInterval(DefaultFlushInterval))
	keys := make([]Key, 10_000)
	for i := range keys {
		keys[i] = blobKey("library/alpine", fmt.Sprintf("layer-%d", i))
		ix.Record(Entry{Key: keys[i], Size: 1})
	}
	if err := ix.Flush(); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			ix.Touch(keys[i%len(keys)])
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				ix.Touch(keys[i%len(keys)])
			}
		})
	})
}

// BenchmarkTouchShared is BenchmarkTouch on an index a Syncer shares: a touch
// also queues its entry for the next publish, once per interval; the outbox
// is taken every 10,000 touches, as a Syncer takes it every interval.
func BenchmarkTouchShared(b *testing.B) {
	ix, _ := openTest(b, WithFlushInterval(DefaultFlushInterval))
	keys := make([]Key, 10_000)
	for i := range keys {
		keys[i] = blobKey("library/alpine", fmt.Sprintf("layer-%d", i))
		ix.Record(Entry{Key: keys[i], Size: 1})
	}
	ix.startSharing()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ix.Touch(keys[i%len(keys)])
		if i%len(keys) == len(keys)-1 {
			ix.takeOutbox()
		}
	}
}
