package upstream

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// bodyReader wraps a response body. A Read that waits longer than the stall
// timeout for data cancels the request and fails with ErrStalled; the clock
// only runs while a Read is in progress, so a slow consumer is never blamed
// on the upstream. Close releases the request's context.
type bodyReader struct {
	ctx     context.Context // the caller's context, to report its error
	rc      io.ReadCloser
	stall   time.Duration
	cancel  context.CancelFunc // cancels the request (and so a blocked Read)
	timer   *time.Timer
	stalled atomic.Bool
	// onStall, when set, is told of the stall once (the client's Health).
	onStall  func(error)
	reported atomic.Bool
}

func newBodyReader(ctx context.Context, rc io.ReadCloser, stall time.Duration, cancel context.CancelFunc) *bodyReader {
	b := &bodyReader{ctx: ctx, rc: rc, stall: stall, cancel: cancel}
	b.timer = time.AfterFunc(time.Hour, func() {
		b.stalled.Store(true)
		b.cancel()
	})
	b.timer.Stop()
	return b
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.stalled.Load() {
		return 0, b.stallError()
	}
	if len(p) == 0 {
		return b.rc.Read(p)
	}
	b.timer.Reset(b.stall)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	switch {
	case b.stalled.Load():
		if n > 0 {
			return n, nil // the next Read reports the stall
		}
		return 0, b.stallError()
	case err != nil && err != io.EOF && b.ctx.Err() != nil:
		return n, fmt.Errorf("read upstream body: %w", context.Cause(b.ctx))
	}
	return n, err
}

func (b *bodyReader) stallError() error {
	err := fmt.Errorf("%w: no data for %s", ErrStalled, b.stall)
	if b.onStall != nil && !b.reported.Swap(true) {
		b.onStall(err)
	}
	return err
}

// Close closes the body and cancels the request; it may be called more than
// once.
func (b *bodyReader) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}
