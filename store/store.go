package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// GroupCommitMax caps how many writes share one transaction.
	GroupCommitMax int
	// ReadConns is the size of the read-only connection pool.
	ReadConns int
	// DefaultQuota applies to accounts whose quota is -1; 0 means unlimited.
	DefaultQuota int64
	// Summarize, when set, computes the opaque per-message summary stored beside each
	// message at delivery, so readers (IMAP ENVELOPE, SEARCH) need not parse the body.
	Summarize func(body []byte) []byte
	// Now is the clock; tests replace it.
	Now    func() time.Time
	Logger *slog.Logger
	// Observe, when set, receives the duration of each committed batch and its size.
	Observe func(batch int, d time.Duration)
}

// Store is an open coibox database.
type Store struct {
	path   string
	opts   Options
	wdb    *sql.DB // exactly one connection: the writer
	rdb    *sql.DB // query-only pool
	writes chan *writeReq
	quit   chan struct{}
	done   chan struct{}
	feed   feed
	closed sync.Once
	log    *slog.Logger
	auth   authCache
}

// DBFile is the database's file name inside the data directory.
const DBFile = "coibox.db"

// ErrClosed is returned for writes submitted after Close.
var ErrClosed = errors.New("store is closed")

// Open opens (creating if needed) the database in dir and starts its writer.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if opts.GroupCommitMax <= 0 {
		opts.GroupCommitMax = 256
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dir, DBFile)
	// synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss, and a
	// message acknowledged with 250 must survive that.
	wdsn := "file:" + path + "?_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_busy_timeout=10000&_txlock=immediate&cache=private"
	wdb, err := sql.Open("sqlite3", wdsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	if err := wdb.PingContext(ctx); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, err
	}
	rdsn := "file:" + path + "?_query_only=1&_busy_timeout=10000&_foreign_keys=1&cache=private"
	rdb, err := sql.Open("sqlite3", rdsn)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open read pool: %w", err)
	}
	rdb.SetMaxOpenConns(opts.ReadConns)
	rdb.SetMaxIdleConns(opts.ReadConns)
	s := &Store{
		path:   path,
		opts:   opts,
		wdb:    wdb,
		rdb:    rdb,
		writes: make(chan *writeReq, opts.GroupCommitMax),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		log:    opts.Logger,
	}
	s.feed.init()
	go s.writer()
	return s, nil
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// Close finishes queued writes, stops the writer and closes the database.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.quit)
		<-s.done
		err = errors.Join(s.rdb.Close(), s.wdb.Close())
	})
	return err
}

func (s *Store) now() time.Time { return s.opts.Now() }

// Tx is one caller's part of a group-committed transaction. Every write runs inside a
// savepoint of its own, so one caller's failure rolls back only its own changes.
type Tx struct {
	tx      *sql.Tx
	ctx     context.Context
	touched map[int64]struct{}
	after   []func()
}

// touch marks an account whose change feed must be poked once the batch commits.
func (t *Tx) touch(accountID int64) { t.touched[accountID] = struct{}{} }

func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, q, args...)
}

func (t *Tx) queryRow(q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(t.ctx, q, args...)
}

func (t *Tx) query(q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(t.ctx, q, args...)
}

type writeReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	err  error
	done chan struct{}
}

// write runs fn in the writer's next batch and returns once that batch is durable.
func (s *Store) write(ctx context.Context, fn func(*Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case s.writes <- req:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the write is not abandoned: the caller waits for its outcome, so it
	// never reports failure for a write that later commits.
	<-req.done
	return req.err
}

func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*writeReq, 0, s.opts.GroupCommitMax)
	for {
		batch = batch[:0]
		select {
		case req := <-s.writes:
			batch = append(batch, req)
		case <-s.quit:
			// Drain what was queued before Close so no accepted write is lost.
			for {
				select {
				case req := <-s.writes:
					s.commit([]*writeReq{req})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case req := <-s.writes:
				batch = append(batch, req)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []*writeReq) {
	start := time.Now()
	ctx := context.Background()
	finish := func(err error) {
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
			close(r.done)
		}
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		finish(fmt.Errorf("begin transaction: %w", err))
		return
	}
	t := &Tx{tx: tx, ctx: ctx, touched: map[int64]struct{}{}}
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.err = r.ctx.Err()
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
			r.err = fmt.Errorf("savepoint: %w", err)
			continue
		}
		mark := len(t.after)
		if err := r.fn(t); err != nil {
			r.err = err
			t.after = t.after[:mark]
			if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO w"); rerr != nil {
				// The transaction is unusable: fail the whole batch.
				_ = tx.Rollback()
				finish(fmt.Errorf("roll back savepoint: %w", rerr))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE w"); err != nil {
			_ = tx.Rollback()
			finish(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		finish(fmt.Errorf("commit: %w", err))
		return
	}
	if s.opts.Observe != nil {
		s.opts.Observe(len(batch), time.Since(start))
	}
	for _, f := range t.after {
		f()
	}
	// Poke after the commit: a woken session must find the change in the database.
	for id := range t.touched {
		s.feed.poke(id)
	}
	finish(nil)
}

// Write runs fn as one atomic write in the group-committed writer. It is the escape
// hatch for packages that need several store operations in one transaction.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error {
	return s.write(ctx, fn)
}
