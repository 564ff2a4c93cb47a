// Package eventhub wakes the followers of a deployment's events in this
// process. It carries no events, only "look again": the events themselves
// are read from the store, so a follower never misses one between a wake-up
// and its read, and a lost wake-up costs at most a poll interval.
package eventhub

import "sync"

// Hub maps deployment ids to their followers' wake-up channels. The zero
// value is ready to use.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// Watch returns a channel woken by Notify(id); stop releases it.
func (h *Hub) Watch(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[string]map[chan struct{}]struct{}{}
	}
	set := h.subs[id]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		h.subs[id] = set
	}
	set[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() { once.Do(func() { h.remove(id, ch) }) }
}

func (h *Hub) remove(id string, ch chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[id], ch)
	if len(h.subs[id]) == 0 {
		delete(h.subs, id)
	}
}

// Notify wakes every follower of id. It never blocks: a follower that has
// not consumed its last wake-up already has one pending.
func (h *Hub) Notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[id] {
		wake(ch)
	}
}

// NotifyAll wakes every follower: after a listener reconnects, any of them
// may have missed a notification.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.subs {
		for ch := range set {
			wake(ch)
		}
	}
}

// Followers returns how many channels are watched, for tests.
func (h *Hub) Followers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.subs {
		n += len(set)
	}
	return n
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
