package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CertStorage is certmagic's Storage on the shared database, for HTTPS in
// cluster mode: every node finds the certificates, keys and ACME account
// that any node obtained, and the challenge tokens of an order another node
// placed (certmagic's distributed solving loads them from Storage), so any
// node answers the CA's HTTP-01 request. Its lock is what makes two nodes
// asked for one new domain place one order: certmagic takes it around an
// order and looks in storage again once it holds it.
//
// Why our own: the published PostgreSQL storages are race-prone or
// unmaintained (DESIGN.md), and the whole of it is two tables
// (migrations/0004_certmagic.sql).
//
// The lock is a row per name with an owner token, new for each
// acquisition, and an expiry on the database's clock (one clock for every
// node, whatever their own say). The holder pushes the expiry forward every
// LockTTL/3 while it holds the lock, since certmagic holds it for a whole
// ACME order, which can take tens of seconds; a holder that dies or stops
// (SIGSTOP, a partition) stops renewing, and after LockTTL its row is stale
// and the next Lock takes it over. Renewing and unlocking are fenced by the
// token: a holder whose lock was taken over renews and deletes nothing.
// Store and Delete are not fenced (certmagic's API carries no token); a
// taken-over holder finishing its order writes a valid certificate of its
// own, which certmagic tolerates.
type CertStorage struct {
	pool    *pgxpool.Pool
	ttl     time.Duration
	maxPoll time.Duration
	log     *slog.Logger

	mu sync.Mutex
	// held is this process's own locks: name -> the acquisition's token
	// and its renewer. It is a cache of what the table says is ours.
	held map[string]*heldLock
}

// CertStorageOptions configures NewCertStorage; the zero value is the
// production setting.
type CertStorageOptions struct {
	// LockTTL is how long a lock outlives its holder's last renewal;
	// default 30s. A dead node's lock blocks a new order for at most that.
	LockTTL time.Duration
	// MaxPoll bounds the wait between two tries of a blocked Lock, which
	// start at 20ms and double; default 1s.
	MaxPoll time.Duration
	Logger  *slog.Logger
}

type heldLock struct {
	token string
	stop  context.CancelFunc
	done  chan struct{}
}

// ErrLockNotHeld is Unlock's and RenewLockLease's answer for a name this
// CertStorage does not hold.
var ErrLockNotHeld = errors.New("certificate lock not held by this node")

const (
	defaultLockTTL = 30 * time.Second
	firstPoll      = 20 * time.Millisecond
	defaultMaxPoll = time.Second
	// renewTimeout bounds one renewal query, so that a hung connection
	// cannot hold the renewer past the lock's expiry unnoticed.
	renewTimeout = 5 * time.Second
)

var (
	_ certmagic.Storage          = (*CertStorage)(nil)
	_ certmagic.TryLocker        = (*CertStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*CertStorage)(nil)
)

// NewCertStorage returns the Storage on pool, whose database Open migrated.
func NewCertStorage(pool *pgxpool.Pool, opts CertStorageOptions) *CertStorage {
	if opts.LockTTL <= 0 {
		opts.LockTTL = defaultLockTTL
	}
	if opts.MaxPoll <= 0 {
		opts.MaxPoll = defaultMaxPoll
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &CertStorage{pool: pool, ttl: opts.LockTTL, maxPoll: opts.MaxPoll,
		log: opts.Logger.With("component", "certstore"), held: map[string]*heldLock{}}
}

// String names the storage in certmagic's logs.
func (s *CertStorage) String() string { return "postgres certmagic storage" }

func notExist(key string) error {
	return fmt.Errorf("certificate storage: %q: %w", key, fs.ErrNotExist)
}

// under returns the bounds of the keys strictly below prefix: with keys
// compared as bytes, "p/..." sorts in ["p/", "p0"), '0' following '/'.
func under(prefix string) (lo, hi string) { return prefix + "/", prefix + "0" }

// Store puts value at key, replacing what was there.
func (s *CertStorage) Store(ctx context.Context, key string, value []byte) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("certificate storage: invalid key %q", key)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO certmagic_data (key, value, modified) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, modified = EXCLUDED.modified`, key, value)
	if err != nil {
		return fmt.Errorf("certificate storage: store %q: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (s *CertStorage) Load(ctx context.Context, key string) ([]byte, error) {
	var value []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM certmagic_data WHERE key = $1`, key).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notExist(key)
	}
	if err != nil {
		return nil, fmt.Errorf("certificate storage: load %q: %w", key, err)
	}
	return value, nil
}

// Delete removes key and, as a directory, every key below it. A missing key
// is not an error.
func (s *CertStorage) Delete(ctx context.Context, key string) error {
	lo, hi := under(key)
	_, err := s.pool.Exec(ctx, `DELETE FROM certmagic_data WHERE key = $1 OR (key >= $2 AND key < $3)`, key, lo, hi)
	if err != nil {
		return fmt.Errorf("certificate storage: delete %q: %w", key, err)
	}
	return nil
}

// Exists says whether key is a value or a directory above values.
func (s *CertStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// Stat describes key: a value (IsTerminal, with its size and time) or a
// directory; an error wrapping fs.ErrNotExist when it is neither.
func (s *CertStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	lo, hi := under(key)
	var found string
	var size int64
	var modified time.Time
	// key itself sorts before every key below it, so the first row says
	// which of the two it is.
	err := s.pool.QueryRow(ctx, `SELECT key, length(value), modified FROM certmagic_data
		WHERE key = $1 OR (key >= $2 AND key < $3) ORDER BY key LIMIT 1`, key, lo, hi).Scan(&found, &size, &modified)
	if errors.Is(err, pgx.ErrNoRows) {
		return certmagic.KeyInfo{}, notExist(key)
	}
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("certificate storage: stat %q: %w", key, err)
	}
	if found != key {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{Key: key, Modified: modified, Size: size, IsTerminal: true}, nil
}

// List returns the keys below prefix, as FileStorage walks a directory:
// the direct children (values and directories) or, recursive, every
// value and directory at any depth, a directory before what is in it. A prefix that is
// neither a directory nor a value is fs.ErrNotExist; a value has no
// children.
func (s *CertStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	keys, err := s.keysBelow(ctx, prefix)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		if _, err := s.Stat(ctx, prefix); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return childPaths(prefix, keys, recursive), nil
}

func (s *CertStorage) keysBelow(ctx context.Context, prefix string) ([]string, error) {
	query, args := `SELECT key FROM certmagic_data ORDER BY key`, []any{}
	if prefix != "" {
		lo, hi := under(prefix)
		query, args = `SELECT key FROM certmagic_data WHERE key >= $1 AND key < $2 ORDER BY key`, []any{lo, hi}
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("certificate storage: list %q: %w", prefix, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("certificate storage: list %q: %w", prefix, err)
	}
	return keys, nil
}

// childPaths turns the sorted values below prefix into what List returns:
// their first path component under prefix or, recursive, every directory
// on their way too; each once, in order.
func childPaths(prefix string, keys []string, recursive bool) []string {
	base := prefix
	if base != "" {
		base += "/"
	}
	seen := map[string]bool{}
	var out []string
	for _, key := range keys {
		parts := strings.Split(strings.TrimPrefix(key, base), "/")
		depth := 1
		if recursive {
			depth = len(parts)
		}
		for i := 1; i <= depth; i++ {
			p := base + strings.Join(parts[:i], "/")
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}
