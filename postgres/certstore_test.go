package postgres

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

// These tests run against a throwaway PostgreSQL (pgtest; TestMain is in
// store_test.go). Two CertStorages on two pools stand for two nodes.

func migrateForCerts(ctx context.Context, url string) error {
	db, err := Open(ctx, Options{URL: url})
	if err != nil {
		return err
	}
	return db.Close()
}

// twoNodes returns two CertStorages on one fresh database, each with its
// own pool, as two processes would have.
func twoNodes(t *testing.T, opts CertStorageOptions) (*CertStorage, *CertStorage) {
	t.Helper()
	url := pgtest.Database(t, migrateForCerts)
	node := func() *CertStorage {
		db, err := Open(context.Background(), Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return NewCertStorage(db.Pool, opts)
	}
	return node(), node()
}

func TestCertStorageSemantics(t *testing.T) {
	ctx := context.Background()
	a, b := twoNodes(t, CertStorageOptions{})
	for _, kv := range []struct{ key, value string }{
		{"certificates/acme/shop.example.com/shop.example.com.crt", "CERT"},
		{"certificates/acme/shop.example.com/shop.example.com.key", "KEY"},
		{"certificates/acme/shop.example.com-x/x.crt", "X"},
		{"acme/acme/challenge_tokens/shop.example.com.json", "{}"},
		{"last_clean.json", "1"},
	} {
		if err := a.Store(ctx, kv.key, []byte(kv.value)); err != nil {
			t.Fatal(err)
		}
	}
	// Overwrite: the last Store wins, as seen from the other node.
	if err := a.Store(ctx, "last_clean.json", []byte("22")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() (any, error)
		want any
		// notExist: the error must wrap fs.ErrNotExist.
		notExist bool
	}{
		{"load from the other node", func() (any, error) {
			v, err := b.Load(ctx, "certificates/acme/shop.example.com/shop.example.com.key")
			return string(v), err
		}, "KEY", false},
		{"load overwritten", func() (any, error) { v, err := b.Load(ctx, "last_clean.json"); return string(v), err }, "22", false},
		{"load missing", func() (any, error) { v, err := b.Load(ctx, "certificates/nope"); return string(v), err }, "", true},
		{"load a directory", func() (any, error) { v, err := b.Load(ctx, "certificates/acme"); return string(v), err }, "", true},
		{"exists file", func() (any, error) { return b.Exists(ctx, "last_clean.json"), nil }, true, false},
		{"exists directory", func() (any, error) { return b.Exists(ctx, "certificates/acme"), nil }, true, false},
		{"exists not a component prefix", func() (any, error) { return b.Exists(ctx, "certificates/ac"), nil }, false, false},
		{"exists missing", func() (any, error) { return b.Exists(ctx, "nope"), nil }, false, false},
		{"stat file", func() (any, error) {
			ki, err := b.Stat(ctx, "last_clean.json")
			return [3]any{ki.Key, ki.Size, ki.IsTerminal && !ki.Modified.IsZero()}, err
		}, [3]any{"last_clean.json", int64(2), true}, false},
		{"stat directory", func() (any, error) {
			ki, err := b.Stat(ctx, "certificates/acme/shop.example.com")
			return [3]any{ki.Key, ki.Size, ki.IsTerminal}, err
		}, [3]any{"certificates/acme/shop.example.com", int64(0), false}, false},
		{"stat missing", func() (any, error) { _, err := b.Stat(ctx, "certificates/acme/nope"); return nil, err }, nil, true},
		{"list direct children", func() (any, error) { return b.List(ctx, "certificates/acme", false) },
			[]string{"certificates/acme/shop.example.com-x", "certificates/acme/shop.example.com"}, false},
		{"list recursive", func() (any, error) { return b.List(ctx, "certificates", true) },
			[]string{"certificates/acme", "certificates/acme/shop.example.com-x", "certificates/acme/shop.example.com-x/x.crt",
				"certificates/acme/shop.example.com", "certificates/acme/shop.example.com/shop.example.com.crt",
				"certificates/acme/shop.example.com/shop.example.com.key"}, false},
		{"list root", func() (any, error) { return b.List(ctx, "", false) }, []string{"acme", "certificates", "last_clean.json"}, false},
		{"list a file", func() (any, error) { return b.List(ctx, "last_clean.json", true) }, []string(nil), false},
		{"list missing", func() (any, error) { return b.List(ctx, "certificates/zzz", false) }, []string(nil), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run()
			if tt.notExist {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("error = %v, want one wrapping fs.ErrNotExist", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalAny(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
	t.Run("store refuses a key with a leading slash", func(t *testing.T) {
		if err := a.Store(ctx, "/abs", []byte("x")); err == nil {
			t.Fatal("Store(/abs) succeeded")
		}
	})
	t.Run("delete a directory deletes below it only", func(t *testing.T) {
		if err := b.Delete(ctx, "certificates/acme/shop.example.com"); err != nil {
			t.Fatal(err)
		}
		if a.Exists(ctx, "certificates/acme/shop.example.com/shop.example.com.crt") {
			t.Error("a key below the deleted directory is still there")
		}
		if !a.Exists(ctx, "certificates/acme/shop.example.com-x/x.crt") {
			t.Error("a sibling whose name starts the same was deleted")
		}
		if err := b.Delete(ctx, "certificates/acme/shop.example.com"); err != nil {
			t.Errorf("deleting again: %v, want nil", err)
		}
	})
}

func equalAny(got, want any) bool {
	if g, ok := got.([]string); ok {
		w, _ := want.([]string)
		return slices.Equal(g, w)
	}
	return got == want
}

// Many workers on two nodes take one lock in turns: never two inside.
func TestCertLockMutualExclusion(t *testing.T) {
	a, b := twoNodes(t, CertStorageOptions{MaxPoll: 50 * time.Millisecond})
	const workers, rounds = 8, 5
	var inside, maxInside, entered atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		node := []*CertStorage{a, b}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := node.Lock(ctx, "issue_cert_shop.example.com"); err != nil {
					cancel()
					t.Error(err)
					return
				}
				n := inside.Add(1)
				entered.Add(1)
				for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
				}
				time.Sleep(5 * time.Millisecond)
				inside.Add(-1)
				if err := node.Unlock(ctx, "issue_cert_shop.example.com"); err != nil {
					t.Error(err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d lock/unlock rounds over 2 nodes in %v, at most %d inside at once", entered.Load(), time.Since(start).Round(time.Millisecond), maxInside.Load())
	if entered.Load() != workers*rounds {
		t.Errorf("%d critical sections entered, want %d", entered.Load(), workers*rounds)
	}
	if maxInside.Load() != 1 {
		t.Errorf("at most %d holders at once, want 1", maxInside.Load())
	}
}

// Lock waits while the other node holds the lock, returns soon after its
// Unlock, and gives up when its context ends.
func TestCertLockBlocksUntilUnlock(t *testing.T) {
	ctx := context.Background()
	a, b := twoNodes(t, CertStorageOptions{MaxPoll: 100 * time.Millisecond})
	if err := a.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := b.Lock(short, "x")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held lock with a 300ms context: %v, want DeadlineExceeded", err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "x") }()
	select {
	case err := <-got:
		t.Fatalf("Lock returned (%v) while the other node holds the lock", err)
	case <-time.After(500 * time.Millisecond):
	}
	unlocked := time.Now()
	if err := a.Unlock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("waiting Lock acquired %v after Unlock", time.Since(unlocked).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("Lock still waiting 10s after Unlock")
	}
	if err := b.Unlock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
}

// A holder that stops renewing (dead, or paused past the expiry) loses
// its lock to the next node after LockTTL; its late Unlock and lease
// renewal change nothing, and a node that never held it cannot unlock it.
func TestCertLockStaleTakeoverAndFencing(t *testing.T) {
	ctx := context.Background()
	ttl := time.Second
	a, b := twoNodes(t, CertStorageOptions{LockTTL: ttl, MaxPoll: 100 * time.Millisecond})
	if err := a.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	// Held and renewed: still a's after several TTLs.
	time.Sleep(3 * ttl)
	if ok, err := b.TryLock(ctx, "x"); ok || err != nil {
		t.Fatalf("TryLock of a renewed lock after 3 TTLs: %v, %v; want false", ok, err)
	}
	if err := b.Unlock(ctx, "x"); !errors.Is(err, ErrLockNotHeld) {
		t.Errorf("Unlock by a node that never held it: %v, want ErrLockNotHeld", err)
	}
	if owner := lockOwner(t, a, "x"); owner != heldToken(a, "x") {
		t.Fatalf("after a non-owner's Unlock the lock's owner is %q, want a's", owner)
	}
	pauseRenewal(a, "x")
	t0 := time.Now()
	if err := b.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	t.Logf("stale lock (TTL %v) taken over %v after its holder stopped renewing", ttl, time.Since(t0).Round(time.Millisecond))
	bToken := heldToken(b, "x")
	if err := a.RenewLockLease(ctx, "x", time.Minute); !errors.Is(err, ErrLockNotHeld) {
		t.Errorf("the old holder's RenewLockLease: %v, want ErrLockNotHeld", err)
	}
	if err := a.Unlock(ctx, "x"); err != nil {
		t.Errorf("the old holder's Unlock: %v", err)
	}
	if owner := lockOwner(t, a, "x"); owner != bToken {
		t.Fatalf("after the old holder's Unlock the owner is %q, want the new holder's %q", owner, bToken)
	}
	if err := b.Unlock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if owner := lockOwner(t, a, "x"); owner != "" {
		t.Errorf("after the holder's Unlock the lock is still owned by %q", owner)
	}
}

// pauseRenewal stops a held lock's renewer without unlocking, as a
// SIGSTOP or a crash would.
func pauseRenewal(s *CertStorage, name string) {
	s.mu.Lock()
	h := s.held[name]
	s.mu.Unlock()
	h.stop()
	<-h.done
}

func heldToken(s *CertStorage, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[name].token
}

func lockOwner(t *testing.T, s *CertStorage, name string) string {
	t.Helper()
	var owner string
	err := s.pool.QueryRow(context.Background(), `SELECT coalesce((SELECT owner FROM certmagic_locks WHERE name = $1), '')`, name).Scan(&owner)
	if err != nil {
		t.Fatal(err)
	}
	return owner
}

// certmagic's RenewLockLease keeps a lock past LockTTL without the
// renewer; Close hands a stopping node's locks over at once.
func TestCertLockLeaseAndClose(t *testing.T) {
	ctx := context.Background()
	ttl := time.Second
	a, b := twoNodes(t, CertStorageOptions{LockTTL: ttl, MaxPoll: 50 * time.Millisecond})
	for _, name := range []string{"leased", "other"} {
		if err := a.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.RenewLockLease(ctx, "leased", time.Minute); err != nil {
		t.Fatal(err)
	}
	pauseRenewal(a, "leased")
	time.Sleep(2 * ttl)
	if ok, err := b.TryLock(ctx, "leased"); ok || err != nil {
		t.Fatalf("TryLock of a lock leased for a minute, 2 TTLs after its last renewal: %v, %v; want false", ok, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"leased", "other"} {
		if ok, err := b.TryLock(ctx, name); !ok || err != nil {
			t.Errorf("TryLock(%s) after the holder's Close: %v, %v; want true", name, ok, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if owner := lockOwner(t, a, "other"); owner != "" {
		t.Errorf("after Close the lock is still owned by %q", owner)
	}
}
