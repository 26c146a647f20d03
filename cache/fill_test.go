package cache

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestReadableHoldsBackLastByte: until the digest matched, a reader may have every
// byte written so far but never the blob's last one.
func TestReadableHoldsBackLastByte(t *testing.T) {
	tests := []struct {
		size, written int64
		done          bool
		want          int64
	}{
		{size: 10, written: 0, want: 0},
		{size: 10, written: 5, want: 5},
		{size: 10, written: 9, want: 9},
		{size: 10, written: 10, want: 9}, // all there, not yet verified
		{size: 10, written: 10, done: true, want: 10},
		{size: -1, written: 0, want: 0}, // unknown size: hold back the newest byte
		{size: -1, written: 7, want: 6},
		{size: -1, written: 7, done: true, want: 7},
		{size: 1, written: 1, want: 0},
		{size: 0, written: 0, done: true, want: 0},
	}
	for _, tt := range tests {
		f := &fill{size: tt.size, written: tt.written, done: tt.done}
		if got := f.readable(); got != tt.want {
			t.Errorf("size %d written %d done %v: readable %d, want %d", tt.size, tt.written, tt.done, got, tt.want)
		}
	}
}

// TestFillReadAtWaits: a reader blocks for bytes not yet arrived, gets them once
// verified, and gets the fill's error when it fails.
func TestFillReadAtWaits(t *testing.T) {
	spool, err := os.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("0123456789")
	f := newFill(digest.FromBytes(content), repository{"repo", "repo"}, spool)
	f.start(int64(len(content)))

	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 10)
		n, err := f.ReadAt(context.Background(), buf, 0)
		if err != nil {
			got <- nil
			return
		}
		got <- buf[:n]
	}()
	select {
	case b := <-got:
		t.Fatalf("ReadAt returned %q before any byte was written", b)
	case <-time.After(50 * time.Millisecond):
	}
	_, _ = spool.Write(content)
	f.advance(len(content))
	if b := <-got; string(b) != "012345678" {
		t.Fatalf("before verification got %q, want 9 bytes", b)
	}
	f.finish(nil)
	buf := make([]byte, 10)
	if n, err := f.ReadAt(context.Background(), buf, 9); err != nil || string(buf[:n]) != "9" {
		t.Fatalf("after verification: %q %v", buf[:n], err)
	}
	if _, err := f.ReadAt(context.Background(), buf, 10); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF", err)
	}

	failed := newFill(digest.FromBytes(content), repository{"repo", "repo"}, spool)
	failed.finish(ErrDigestMismatch)
	if _, err := failed.ReadAt(context.Background(), buf, 0); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("failed fill: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	waiting := newFill(digest.FromBytes(content), repository{"repo", "repo"}, spool)
	if _, err := waiting.ReadAt(ctx, buf, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled reader: %v", err)
	}
}
