package sqlite

import (
	"context"
	"database/sql"
)

// Reads go through statements prepared once per query text. modernc's
// SQLite compiles SQL in Go, and re-compiling the same few queries on every
// status poll and every authenticated request was a visible share of the
// API's CPU.

func (db *DB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := db.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := db.reader.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, s); loaded {
		s.Close()
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

func (db *DB) readRow(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := db.stmt(ctx, query)
	if err != nil {
		// The query will fail again and report the error through Scan.
		return db.reader.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

func (db *DB) readRows(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := db.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// Writes inside transactions reuse statements prepared on the writer too:
// the log flusher and state saves send a few statement shapes (an INSERT of
// n lines or events, the last seq), and parsing them again on every flush
// was a third of the write's CPU. A statement can only be prepared on the
// writer's one connection outside a transaction (inside one, the pool has
// no connection to give), so a shape first seen inside a transaction is
// prepared after it commits.

// maxWriteStmts bounds the shapes kept: a batch's row count picks one.
const maxWriteStmts = 64

// txWriter runs a transaction's statements, prepared ones when it can; a
// nil db (the lease transactions' path) prepares nothing.
type txWriter struct {
	db *DB
	tx *sql.Tx
}

func (w txWriter) exec(ctx context.Context, query string, args ...any) error {
	if s := w.stmt(ctx, query); s != nil {
		_, err := s.ExecContext(ctx, args...)
		return err
	}
	_, err := w.tx.ExecContext(ctx, query, args...)
	return err
}

func (w txWriter) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if s := w.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return w.tx.QueryRowContext(ctx, query, args...)
}

// stmt returns query's statement bound to the transaction, or nil when it
// is not prepared yet (it is then wanted, for prepareWanted).
func (w txWriter) stmt(ctx context.Context, query string) *sql.Stmt {
	if w.db == nil {
		return nil
	}
	if s, ok := w.db.writeStmts.Load(query); ok {
		return w.tx.StmtContext(ctx, s.(*sql.Stmt))
	}
	w.db.wantMu.Lock()
	defer w.db.wantMu.Unlock()
	if w.db.prepared+len(w.db.wanted) < maxWriteStmts {
		if w.db.wanted == nil {
			w.db.wanted = map[string]bool{}
		}
		w.db.wanted[query] = true
	}
	return nil
}

// prepareWanted prepares the shapes transactions asked for; call it outside
// any transaction. A failure only means they stay unprepared.
func (db *DB) prepareWanted(ctx context.Context) {
	db.wantMu.Lock()
	wanted := db.wanted
	db.wanted = nil
	db.prepared += len(wanted)
	db.wantMu.Unlock()
	for query := range wanted {
		s, err := db.Writer.PrepareContext(ctx, query)
		if err != nil {
			continue
		}
		if _, loaded := db.writeStmts.LoadOrStore(query, s); loaded {
			s.Close()
		}
	}
}
