package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
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
	path        string
	opts        Options
	wdb         *sql.DB // exactly one connection: the writer
	rdb         *sql.DB // query-only pool
	writes      chan *writeReq
	quit        chan struct{}
	done        chan struct{}
	feed        feed
	closed      sync.Once
	log         *slog.Logger
	auth        authCache
	wal         *os.File
	reads       readStmts
	stmts       map[string]*sql.Stmt // the writer's prepared statements; writer goroutine only
	removeHooks removeHooks
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
	// synchronous=NORMAL: SQLite then skips the fsync at commit, and the syncer does it
	// instead, after the commit and beside the next batch (see syncer). No write is
	// acknowledged before that fsync, so a message answered with 250 survives power loss.
	wdsn := "file:" + path + "?_journal_mode=WAL&_synchronous=NORMAL&_foreign_keys=1&_busy_timeout=10000&_txlock=immediate&cache=private"
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
	if err := migrate(ctx, wdb, dir, opts.Now(), opts.Logger); err != nil {
		wdb.Close()
		return nil, err
	}
	// The WAL exists now (the writer's connection holds it open for the store's life):
	// keep a handle to fsync it, and make its directory entry durable once.
	wal, err := os.OpenFile(path+"-wal", os.O_RDWR, 0)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open write-ahead log: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	rdsn := "file:" + path + "?_query_only=1&_busy_timeout=10000&_foreign_keys=1&cache=private"
	rdb, err := sql.Open("sqlite3", rdsn)
	if err != nil {
		wal.Close()
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
		wal:    wal,
		stmts:  map[string]*sql.Stmt{},
	}
	s.feed.init()
	s.auth.sem = make(chan struct{}, max(2, runtime.NumCPU()))
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
		for _, st := range s.stmts {
			st.Close()
		}
		s.reads.close()
		err = errors.Join(s.rdb.Close(), s.wdb.Close(), s.wal.Close())
	})
	return err
}

func (s *Store) now() time.Time { return s.opts.Now() }

// Tx is one caller's part of a group-committed transaction. Every write runs inside a
// savepoint of its own, so one caller's failure rolls back only its own changes.
type Tx struct {
	tx         *sql.Tx
	ctx        context.Context
	touched    map[int64]struct{}
	removed    Removed // rows this batch deleted, for OnRemoved
	stmts      map[string]*sql.Stmt
	unprepared map[string]struct{}
}

// touch marks an account whose change feed must be poked once the batch commits.
func (t *Tx) touch(accountID int64) { t.touched[accountID] = struct{}{} }

// stmt returns the writer's prepared statement for q. Preparing costs about as much
// as running a small statement, and the writer runs the same few statements all day.
func (t *Tx) stmt(q string) *sql.Stmt {
	st, ok := t.stmts[q]
	if !ok {
		// The writer's only connection is busy with this transaction; prepare after
		// the commit (see prepareNew) and run this one unprepared.
		t.unprepared[q] = struct{}{}
		return nil
	}
	return t.tx.StmtContext(t.ctx, st)
}

func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	if st := t.stmt(q); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, q, args...)
}

func (t *Tx) queryRow(q string, args ...any) *sql.Row {
	if st := t.stmt(q); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, q, args...)
}

func (t *Tx) query(q string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(q); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
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
	return storageFull(req.err)
}

func (s *Store) writer() {
	syncs := make(chan *committed, 1)
	syncDone := make(chan struct{})
	go s.syncer(syncs, syncDone)
	defer func() {
		close(syncs)
		<-syncDone
		close(s.done)
	}()
	for {
		var batch []*writeReq
		select {
		case req := <-s.writes:
			batch = append(make([]*writeReq, 0, 16), req)
		case <-s.quit:
			// Drain what was queued before Close so no accepted write is lost.
			for {
				select {
				case req := <-s.writes:
					if c := s.commit([]*writeReq{req}); c != nil {
						syncs <- c
					}
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < s.opts.GroupCommitMax {
			select {
			case req := <-s.writes:
				batch = append(batch, req)
			default:
				break fill
			}
		}
		if c := s.commit(batch); c != nil {
			// Blocks only while the syncer still holds an earlier batch: then this
			// batch waits, and the next one grows meanwhile.
			syncs <- c
		}
	}
}

// committed is a batch whose transaction committed but may not be on disk yet.
type committed struct {
	batch   []*writeReq
	touched map[int64]struct{}
	removed Removed
	start   time.Time
}

// syncer makes committed batches durable with one fsync of the WAL, then releases
// their callers. It runs beside the writer, so the next batch executes and commits
// while this one's fsync is in flight (pipelined group commit). An fsync covers every
// commit written before it, so batches that queued up meanwhile share it.
func (s *Store) syncer(in <-chan *committed, done chan<- struct{}) {
	defer close(done)
	for c := range in {
		cs := []*committed{c}
	more:
		for {
			select {
			case c2, ok := <-in:
				if !ok {
					break more
				}
				cs = append(cs, c2)
			default:
				break more
			}
		}
		err := s.syncWAL()
		if err != nil {
			s.log.Error("store: fsync failed; writes are not acknowledged", "err", err)
		}
		for _, c := range cs {
			if s.opts.Observe != nil {
				s.opts.Observe(len(c.batch), time.Since(c.start))
			}
			if err == nil && !c.removed.empty() {
				// Before the pokes: a woken session must not find its old cache.
				s.removeHooks.call(c.removed)
			}
			if err == nil {
				// Poke after the data is durable and committed: a woken session must
				// find the change in the database, and it must stay there.
				for id := range c.touched {
					s.feed.poke(id)
				}
			}
			for _, r := range c.batch {
				if r.err == nil {
					r.err = err
				}
				close(r.done)
			}
		}
	}
}

// syncWAL fsyncs the write-ahead log. SQLite deletes the log when its last
// connection closes and makes a new file when one opens again; should database/sql
// ever replace the writer's connection that way, the handle would point at a deleted
// file and its fsync would protect nothing. So the handle is checked against the
// path first (one stat) and reopened when they differ.
func (s *Store) syncWAL() error {
	path := s.path + "-wal"
	cur, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("sync write-ahead log: %w", err)
	}
	if held, err := s.wal.Stat(); err != nil || !os.SameFile(cur, held) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("reopen write-ahead log: %w", err)
		}
		s.wal.Close()
		s.wal = f
		s.log.Warn("store: the write-ahead log was replaced; syncing the new one")
	}
	if err := s.wal.Sync(); err != nil {
		return fmt.Errorf("sync write-ahead log: %w", err)
	}
	return nil
}

// commit runs a batch in one transaction. On success it returns the batch for the
// syncer; on failure it has already answered every caller.
func (s *Store) commit(batch []*writeReq) *committed {
	start := time.Now()
	ctx := context.Background()
	fail := func(err error) *committed {
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
			close(r.done)
		}
		return nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fail(fmt.Errorf("begin transaction: %w", err))
	}
	t := &Tx{tx: tx, ctx: ctx, touched: map[int64]struct{}{}, stmts: s.stmts, unprepared: map[string]struct{}{}}
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.err = r.ctx.Err()
			continue
		}
		if _, err := t.exec("SAVEPOINT w"); err != nil {
			r.err = fmt.Errorf("savepoint: %w", err)
			continue
		}
		nAcc, nBox := len(t.removed.Accounts), len(t.removed.Mailboxes)
		if err := r.fn(t); err != nil {
			r.err = err
			t.removed.Accounts, t.removed.Mailboxes = t.removed.Accounts[:nAcc], t.removed.Mailboxes[:nBox]
			if _, rerr := t.exec("ROLLBACK TO w"); rerr != nil {
				// The transaction is unusable: fail the whole batch.
				_ = tx.Rollback()
				return fail(fmt.Errorf("roll back savepoint: %w", rerr))
			}
		}
		if _, err := t.exec("RELEASE w"); err != nil {
			_ = tx.Rollback()
			return fail(fmt.Errorf("release savepoint: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	s.prepareNew(t.unprepared)
	return &committed{batch: batch, touched: t.touched, removed: t.removed, start: start}
}

// prepareNew prepares statements first seen in the last batch, while the writer's
// connection is free between transactions.
func (s *Store) prepareNew(qs map[string]struct{}) {
	for q := range qs {
		if _, ok := s.stmts[q]; ok || len(s.stmts) > 500 {
			continue
		}
		if st, err := s.wdb.Prepare(q); err == nil {
			s.stmts[q] = st
		}
	}
}

// Write runs fn as one atomic write in the group-committed writer. It is the escape
// hatch for packages that need several store operations in one transaction.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error {
	return s.write(ctx, fn)
}
