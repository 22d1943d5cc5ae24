package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// chatIdleConns is the server's memory for Opened idling connections on chatmail
// accounts.
type chatIdleConns struct {
	Conns      int `json:"conns"`  // asked for
	Opened     int `json:"opened"` // logged in, INBOX selected and idling when measured
	Accounts   int `json:"accounts"`
	PerAccount int `json:"conns_per_account"`
	// ServerPID is the server measured: the benchmark's server restarted, so that
	// the heap the earlier phases left behind does not hide the connections' cost.
	ServerPID  int     `json:"server_pid"`
	RSSBefore  int64   `json:"rss_before_bytes"`
	RSSAfter   int64   `json:"rss_after_bytes"`
	AnonBefore int64   `json:"rss_anon_before_bytes"`
	AnonAfter  int64   `json:"rss_anon_after_bytes"`
	PerConnKB  float64 `json:"rss_per_conn_kb"`
	// AnonPerConnKB is the growth of RssAnon (heap and stacks) per connection.
	AnonPerConnKB float64 `json:"rss_anon_per_conn_kb"`
	// The server's open file descriptors before and after: the connections are
	// really held.
	FDsBefore  int     `json:"fds_before"`
	FDsAfter   int     `json:"fds_after"`
	OpenMs     float64 `json:"open_ms"` // to open, log in, select and idle all of them
	FirstError string  `json:"first_error,omitempty"`
}

// idleConnBuf is the read buffer of each idling connection: the responses to LOGIN,
// SELECT and IDLE are short.
const idleConnBuf = 4 << 10

// chatIdleMemory makes ceil(n/perAccount) chatmail accounts by first login, restarts
// the server (its data stays; its heap starts anew, so that what the earlier phases
// left behind cannot absorb the connections' memory), then opens n connections,
// perAccount on each account, that log in, select INBOX and idle, and reads the
// server's RSS before and after from /proc. The restarted server checks each
// account's password once (argon2, 19 MiB a run) within the phase, as coibench imap
// has its one account's; that churn, if anything, raises the figure. All connections
// come from 127.0.0.1, which the config's imap_connections_per_ip allows. A
// connection that fails stops the opening; the figures are then of the connections
// opened, with the error.
func chatIdleMemory(ctx context.Context, srv *benchServer, n, perAccount int, timeout time.Duration, progress func(string, ...any)) (*chatIdleConns, error) {
	k := (n + perAccount - 1) / perAccount
	res := &chatIdleConns{Conns: n, Accounts: k, PerAccount: perAccount}
	accounts := newChatAccounts(k)
	addr := srv.addr.IMAPS
	err := parallel(ctx, 8, k, func(i int) error {
		c, err := dialIMAPBuf(ctx, addr, "", timeout, idleConnBuf)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.login(accounts[i].user, accounts[i].password); err != nil {
			return fmt.Errorf("first login %s: %w", accounts[i].user, err)
		}
		_, _ = c.cmd(nil, "LOGOUT")
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := srv.stop(); err != nil {
		return nil, fmt.Errorf("restart server: %w", err)
	}
	if err := srv.start(ctx); err != nil {
		return nil, fmt.Errorf("restart server: %w", err)
	}
	pid := srv.proc.Pid()
	res.ServerPID = pid
	progress("idle connections: %d accounts made by first login, server restarted (pid %d)", k, pid)

	before, err := settledMemory(ctx, pid)
	if err != nil {
		return nil, err
	}
	res.RSSBefore, res.AnonBefore = before.RSS, before.Anon
	if res.FDsBefore, err = openFDs(pid); err != nil {
		return nil, err
	}

	conns := make([]*imapConn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = fmt.Fprint(c.conn, "DONE\r\nz LOGOUT\r\n")
				c.Close()
			}
		}
	}()
	var opened atomic.Int64
	start := time.Now()
	step := max(n/4, 1)
	// A few at once: the TLS handshakes are the slow part, and they are CPU.
	err = parallel(ctx, 8, n, func(i int) error {
		a := accounts[i%k]
		c, err := dialIMAPBuf(ctx, addr, "", timeout, idleConnBuf)
		if err != nil {
			return fmt.Errorf("idling connection %d: %w", i, err)
		}
		conns[i] = c
		if err := c.login(a.user, a.password); err != nil {
			return fmt.Errorf("idling connection %d (%s): %w", i, a.user, err)
		}
		if _, _, err := c.selectBox("INBOX"); err != nil {
			return fmt.Errorf("idling connection %d: %w", i, err)
		}
		if err := c.idle(); err != nil {
			return fmt.Errorf("idling connection %d: %w", i, err)
		}
		if o := opened.Add(1); o%int64(step) == 0 && int(o) < n {
			progress("idle connections: %d of %d open after %.1f s", o, n, time.Since(start).Seconds())
		}
		return nil
	})
	res.OpenMs = ms(time.Since(start))
	res.Opened = int(opened.Load())
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		res.FirstError = err.Error()
	}
	after, merr := settledMemory(ctx, pid)
	if merr != nil {
		return nil, merr
	}
	res.RSSAfter, res.AnonAfter = after.RSS, after.Anon
	if res.FDsAfter, err = openFDs(pid); err != nil {
		return nil, err
	}
	if res.Opened > 0 {
		res.PerConnKB = float64(res.RSSAfter-res.RSSBefore) / 1024 / float64(res.Opened)
		res.AnonPerConnKB = float64(res.AnonAfter-res.AnonBefore) / 1024 / float64(res.Opened)
	}
	return res, nil
}

// parallel runs f(0) … f(n-1) on workers goroutines and returns the first error; after
// it, no further f starts.
func parallel(ctx context.Context, workers, n int, f func(i int) error) error {
	var (
		next    atomic.Int64
		failed  atomic.Bool
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil && !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errOnce.Do(func() { first = err })
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
