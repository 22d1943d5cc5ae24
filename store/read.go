package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

var errNotCached = errors.New("statement cache full")

// readStmts caches prepared statements of the read pool. database/sql prepares each
// one lazily on every pool connection that runs it, once; preparing costs about as
// much as a small query, and the RCPT and login paths run the same few all day.
type readStmts struct {
	m sync.Map // query string → *sql.Stmt
	n atomic.Int32
}

// maxReadStmts bounds the cache: queries built at run time (UID ranges) come in many
// shapes, and the rare ones are not worth a statement on every pool connection.
const maxReadStmts = 256

func (s *Store) readStmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.reads.m.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	if s.reads.n.Load() >= maxReadStmts {
		return nil, errNotCached
	}
	st, err := s.rdb.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	s.reads.n.Add(1)
	if prev, loaded := s.reads.m.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// readRow runs a one-row query on the read pool through a cached statement.
func (s *Store) readRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := s.readStmt(ctx, q)
	if err != nil {
		// Uncached, or let QueryRow report the preparation error through Scan.
		return s.rdb.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// readRows runs a query on the read pool through a cached statement. Queries built
// at run time (UID ranges) are cached too; their shapes repeat.
func (s *Store) readRows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.readStmt(ctx, q)
	if err != nil {
		return s.rdb.QueryContext(ctx, q, args...)
	}
	return st.QueryContext(ctx, args...)
}

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface{ Scan(...any) error }

// collect runs a list query on the read pool and scans every row; what names the
// operation in errors ("list accounts: …").
func collect[T any](ctx context.Context, s *Store, what, q string, scan func(rowScanner) (T, error), args ...any) ([]T, error) {
	rows, err := s.readRows(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// readOne runs a one-row query on the read pool and scans it; no row is ErrNotFound.
func readOne[T any](ctx context.Context, s *Store, what string, scan func(rowScanner) (*T, error), q string, args ...any) (*T, error) {
	v, err := scan(s.readRow(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// deref adapts a scanner returning a pointer to collect.
func deref[T any](scan func(rowScanner) (*T, error)) func(rowScanner) (T, error) {
	return func(r rowScanner) (T, error) {
		p, err := scan(r)
		if err != nil {
			var zero T
			return zero, err
		}
		return *p, nil
	}
}

// execOne runs a write that must touch at least one row; none means ErrNotFound.
func (t *Tx) execOne(q string, args ...any) error {
	res, err := t.exec(q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

func (r *readStmts) close() {
	r.m.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
}
