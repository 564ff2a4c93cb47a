package api

import "sync"

// streamLimiter caps the event streams each org holds open on this server:
// a stream holds a connection (a file descriptor) for as long as the
// deployment runs, and tokens are cheap to loop with.
type streamLimiter struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newStreamLimiter(max int) *streamLimiter {
	return &streamLimiter{max: max, open: map[string]int{}}
}

// acquire takes one of org's streams; release gives it back, once.
func (l *streamLimiter) acquire(org string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[org] >= l.max {
		return nil, false
	}
	l.open[org]++
	return sync.OnceFunc(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.open[org]--; l.open[org] <= 0 {
			delete(l.open, org)
		}
	}), true
}

func eventDefaults(cfg *Config) {
	if cfg.EventKeepAlive <= 0 {
		cfg.EventKeepAlive = defaultKeepAlive
	}
	if cfg.EventPoll <= 0 {
		cfg.EventPoll = defaultEventPoll
	}
	if cfg.MaxStreamsPerOrg <= 0 {
		cfg.MaxStreamsPerOrg = defaultStreamsPerOrg
	}
}
