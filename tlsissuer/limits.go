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
	// maxOrgLimiters bounds the per-org limiters kept. Past it, idle ones
	// (bucket full again) are dropped first; an org whose limiter is
	// dropped while busy gets a fresh burst, which the global ceiling
	// still bounds.
	maxOrgLimiters = 10000
)

// errTooManyOrders refuses a new certificate when the hourly budget is spent.
var errTooManyOrders = errors.New("too many new certificates ordered recently")

// errOrgTooManyOrders refuses a new certificate when the domain's org spent
// its own budget: other orgs still get theirs.
var errOrgTooManyOrders = errors.New("too many new certificates ordered recently for this org's domains")

// limits decides whether a new certificate may be ordered now: within the
// budget of the domain's org, within a global ceiling, and not for a name
// that failed recently. Per org, so that one tenant attaching many domains
// cannot spend everyone's budget and starve other orgs' first certificates.
type limits struct {
	orders   *rate.Limiter
	orgRate  rate.Limit
	orgBurst int

	mu       sync.Mutex
	failures map[string]failure
	orgs     map[string]*rate.Limiter
}

type failure struct {
	count int
	until time.Time
}

func newLimits(perSecond rate.Limit, burst int, orgPerSecond rate.Limit, orgBurst int) *limits {
	return &limits{orders: rate.NewLimiter(perSecond, burst), orgRate: orgPerSecond, orgBurst: orgBurst,
		failures: map[string]failure{}, orgs: map[string]*rate.Limiter{}}
}

// admit is asked just before an order is placed for name, a domain of org.
func (l *limits) admit(name, org string, now time.Time) error {
	l.mu.Lock()
	f, ok := l.failures[name]
	orgLimit := l.orgLimiter(org, now)
	l.mu.Unlock()
	if ok && now.Before(f.until) {
		return fmt.Errorf("obtaining a certificate for %s failed recently; next attempt after %s",
			name, f.until.UTC().Format(time.RFC3339))
	}
	// Reservations rather than AllowN: a refusal by the global ceiling
	// hands the org its token back, so it is not charged for nothing.
	mine := orgLimit.ReserveN(now, 1)
	if !mine.OK() || mine.DelayFrom(now) > 0 {
		mine.CancelAt(now)
		return errOrgTooManyOrders
	}
	if !l.orders.AllowN(now, 1) {
		mine.CancelAt(now)
		return errTooManyOrders
	}
	return nil
}

// orgLimiter returns org's limiter, making it on first use. Called with mu
// held.
func (l *limits) orgLimiter(org string, now time.Time) *rate.Limiter {
	if lim, ok := l.orgs[org]; ok {
		return lim
	}
	if len(l.orgs) >= maxOrgLimiters {
		l.dropIdleOrgs(now)
	}
	lim := rate.NewLimiter(l.orgRate, l.orgBurst)
	l.orgs[org] = lim
	return lim
}

// dropIdleOrgs forgets the limiters whose bucket is full again (forgetting
// them changes nothing), then arbitrary ones until an eighth is free, so
// that the scan runs once per many new orgs. Called with mu held.
func (l *limits) dropIdleOrgs(now time.Time) {
	for org, lim := range l.orgs {
		if lim.TokensAt(now) >= float64(l.orgBurst) {
			delete(l.orgs, org)
		}
	}
	for org := range l.orgs {
		if len(l.orgs) <= maxOrgLimiters*7/8 {
			break
		}
		delete(l.orgs, org)
	}
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
