package hosted

import (
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Event is a change to a hosted repository, published after it succeeded.
type Event struct {
	Action    string        // "push" or "delete"
	Repo      string        // repository name
	Tag       string        // the tag pushed or deleted; empty for a push or delete by digest
	Digest    digest.Digest // the manifest
	MediaType string        // the manifest's media type (pushes)
	User      string        // who did it; empty when unknown
	Time      time.Time
}

// Subscribe returns a channel of events, buffered for buffer events, and a
// function that ends the subscription. A subscriber that falls behind loses
// events (counted and logged) rather than slowing down pushes.
func (rg *Registry) Subscribe(buffer int) (<-chan Event, func()) {
	return rg.bus.subscribe(buffer)
}

// bus fans events out to subscribers without ever blocking the publisher.
type bus struct {
	mu      sync.Mutex
	subs    map[chan Event]struct{}
	dropped uint64
}

func (b *bus) subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, max(buffer, 1))
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan Event]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// publish hands e to every subscriber with room for it and returns how many
// subscribers missed it.
func (b *bus) publish(e Event) (missed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			missed++
			b.dropped++
		}
	}
	return missed
}
