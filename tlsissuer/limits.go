package tlsissuer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Backoff after a failed issuance for a name: 2, 4, 8, ... minutes, at most
// an hour. Failures then stay within Let's Encrypt's five failed
// validations per name per hour, and a domain whose DNS is fixed later is
// tried again within the hour.
const (
	firstBackoff = 2 * time.Minute
	maxBackoff   = time.Hour
	// maxFailures bounds the names remembered; only allowed names that
	// failed are kept, so reaching it means something is badly wrong, and
	// forgetting the oldest costs at most one early retry each.
	maxFailures = 10000
)

// errTooManyOrders refuses a new certificate when the hourly budget is spent.
var errTooManyOrders = errors.New("too many new certificates ordered recently")

// limits decides whether a new certificate may be ordered now: within a
// global rate, and not for a name that failed recently.
type limits struct {
	orders *rate.Limiter

	mu       sync.Mutex
	failures map[string]failure
}

type failure struct {
	count int
	until time.Time
}

func newLimits(perSecond rate.Limit, burst int) *limits {
	return &limits{orders: rate.NewLimiter(perSecond, burst), failures: map[string]failure{}}
}

// admit is asked just before an order is placed for name.
func (l *limits) admit(name string, now time.Time) error {
	l.mu.Lock()
	f, ok := l.failures[name]
	l.mu.Unlock()
	if ok && now.Before(f.until) {
		return fmt.Errorf("obtaining a certificate for %s failed recently; next attempt after %s",
			name, f.until.UTC().Format(time.RFC3339))
	}
	if !l.orders.AllowN(now, 1) {
		return errTooManyOrders
	}
	return nil
}

// failed records a failed issuance and returns how long name now waits.
func (l *limits) failed(name string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures[name]
	wait := firstBackoff << min(f.count, 10)
	if wait > maxBackoff {
		wait = maxBackoff
	}
	f.count++
	f.until = now.Add(wait)
	if _, known := l.failures[name]; !known && len(l.failures) >= maxFailures {
		l.forgetOldest()
	}
	l.failures[name] = f
	return wait
}

func (l *limits) succeeded(name string) {
	l.mu.Lock()
	delete(l.failures, name)
	l.mu.Unlock()
}

// forgetOldest drops the entry whose backoff ends first. Called with mu
// held, rarely (see maxFailures), so a scan is fine.
func (l *limits) forgetOldest() {
	var oldest string
	var at time.Time
	for name, f := range l.failures {
		if oldest == "" || f.until.Before(at) {
			oldest, at = name, f.until
		}
	}
	delete(l.failures, oldest)
}

// handshake carries, through certmagic, what getCertificate needs to learn
// from onEvent: a way to end the handshake's wait for a certificate once
// the issuance failed, and why it failed.
type handshake struct {
	cancel context.CancelFunc

	mu  sync.Mutex
	err error
}

type handshakeKey struct{}

func withHandshake(parent context.Context) (context.Context, *handshake) {
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	hs := &handshake{cancel: cancel}
	return context.WithValue(ctx, handshakeKey{}, hs), hs
}

// handshakeFrom returns the handshake an event belongs to, nil for events
// outside a handshake (background renewals).
func handshakeFrom(ctx context.Context) *handshake {
	hs, _ := ctx.Value(handshakeKey{}).(*handshake)
	return hs
}

// fail records why the issuance failed and cancels the handshake's
// context: certmagic's retry loop then returns at once.
func (h *handshake) fail(err error) {
	if err == nil {
		err = errors.New("issuance failed")
	}
	h.mu.Lock()
	if h.err == nil {
		h.err = err
	}
	h.mu.Unlock()
	h.cancel()
}

func (h *handshake) failure() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}
