package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The lock half of CertStorage; see its comment for the design.

// Lock takes the named lock, waiting (polling with backoff, from 20ms up to
// MaxPoll) while another holder has it and it is not stale, until ctx is
// done.
func (s *CertStorage) Lock(ctx context.Context, name string) error {
	wait := firstPoll
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for certificate lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, s.maxPoll)
	}
}

// TryLock takes the named lock if it is free or stale, in one statement:
// the row's lock serialises two nodes trying at once, and only the one
// whose insert or takeover happened gets the row back.
func (s *CertStorage) TryLock(ctx context.Context, name string) (bool, error) {
	token, err := newToken()
	if err != nil {
		return false, err
	}
	var owner string
	err = s.pool.QueryRow(ctx, `INSERT INTO certmagic_locks (name, owner, expires_at)
		VALUES ($1, $2, now() + $3 * interval '1 millisecond')
		ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
		WHERE certmagic_locks.expires_at <= now()
		RETURNING owner`, name, token, s.ttl.Milliseconds()).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("take certificate lock %q: %w", name, err)
	}
	s.hold(name, token)
	return true, nil
}

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("certificate lock token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// hold records a lock just taken and starts renewing it.
func (s *CertStorage) hold(name, token string) {
	ctx, stop := context.WithCancel(context.Background())
	h := &heldLock{token: token, stop: stop, done: make(chan struct{})}
	s.mu.Lock()
	s.held[name] = h
	s.mu.Unlock()
	go s.renew(ctx, name, h)
}

// renew pushes the lock's expiry forward every LockTTL/3 until stopped,
// or until the row is no longer ours (taken over after this process was
// paused past the expiry): then there is nothing left to renew.
func (s *CertStorage) renew(ctx context.Context, name string, h *heldLock) {
	defer close(h.done)
	tick := time.NewTicker(s.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := s.extend(ctx, name, h.token, s.ttl)
		if errors.Is(err, ErrLockNotHeld) {
			s.log.Warn("certificate lock lost to another node", "lock", name)
			return
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("certificate lock not renewed", "lock", name, "err", err.Error())
		}
	}
}

// extend moves the lock's expiry to at least now+d if token still owns it.
func (s *CertStorage) extend(ctx context.Context, name, token string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, renewTimeout)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE certmagic_locks
		SET expires_at = greatest(expires_at, now() + $3 * interval '1 millisecond')
		WHERE name = $1 AND owner = $2`, name, token, d.Milliseconds())
	if err != nil {
		return fmt.Errorf("renew certificate lock %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("renew certificate lock %q: %w", name, ErrLockNotHeld)
	}
	return nil
}

// RenewLockLease is certmagic's request, between retries of an order, for
// the lock to last d more.
func (s *CertStorage) RenewLockLease(ctx context.Context, name string, d time.Duration) error {
	s.mu.Lock()
	h := s.held[name]
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("renew certificate lock %q: %w", name, ErrLockNotHeld)
	}
	return s.extend(ctx, name, h.token, d)
}

// Unlock stops renewing the lock and deletes its row if this acquisition
// still owns it. A lock taken over meanwhile is left to its new owner:
// that is not an error, there is nothing of ours left to release.
func (s *CertStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("unlock certificate lock %q: %w", name, ErrLockNotHeld)
	}
	h.stop()
	<-h.done
	tag, err := s.pool.Exec(ctx, `DELETE FROM certmagic_locks WHERE name = $1 AND owner = $2`, name, h.token)
	if err != nil {
		return fmt.Errorf("unlock certificate lock %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		s.log.Warn("certificate lock was taken over before its unlock", "lock", name)
	}
	return nil
}

// Close releases every lock this process still holds, for a node that
// shuts down in the middle of an order: the others need not wait LockTTL
// for it. Like Unlock, it deletes only rows that are still ours.
func (s *CertStorage) Close() error {
	s.mu.Lock()
	names := make([]string, 0, len(s.held))
	for name := range s.held {
		names = append(names, name)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
	defer cancel()
	var errs []error
	for _, name := range names {
		if err := s.Unlock(ctx, name); err != nil && !errors.Is(err, ErrLockNotHeld) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
