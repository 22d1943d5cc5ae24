package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// conn wraps a client's TCP connection, beneath any TLS layer. go-smtp gives a server
// no say when a read times out or the server stops: it writes its own texts. Since
// every read of a session passes through here, in the session's own goroutine, this
// is where coibox answers those moments itself: a 421 with its own text, written
// through the TLS layer when there is one, then the connection is dead.
type conn struct {
	net.Conn
	srv      *Server
	id       string
	ip       netip.Addr
	log      *slog.Logger
	start    time.Time
	messages atomic.Int64
	slot     *slot // its share of the server's Slots

	mu sync.Mutex
	// outer is where the server's own replies go: this conn, or the TLS connection
	// above it once its handshake is complete; nil while no reply can be written
	// safely (during a handshake).
	outer    net.Conn
	inRead   bool // blocked in Read, so the session is not writing
	inTx     bool // between an accepted MAIL and the end of the transaction
	closeNow bool // close at the next read, after the reply being sent (lockout)
	evicted  bool // its slot was given to a newcomer: end at the next read
	// hsUntil is the deadline of a STARTTLS handshake under way; zero otherwise.
	hsUntil time.Time

	dead   atomic.Bool // no more reads or writes
	closed sync.Once

	// Replies are held until the session next waits for input, then sent in one
	// write: a pipelining client's MAIL, RCPT and DATA replies travel together (RFC
	// 2920 §3.2 asks servers to do so), which halves the write calls per message.
	wmu  sync.Mutex
	wbuf []byte
}

// maxPending is how much output is held before it is written regardless.
const maxPending = 32 << 10

// stopLocked says whether the session must end at this read, and with which reply.
func (c *conn) stopLocked() (reply string, stop bool) {
	switch {
	case c.srv.hard.Load():
		return replyShutdown, true
	case c.srv.draining.Load() && !c.inTx:
		return replyShutdown, true
	case c.evicted:
		return replyTooMany, true
	case c.closeNow:
		return "", true
	}
	return "", false
}

// startTLSReply is what go-smtp answers STARTTLS with right before it runs the
// handshake; go-smtp has no hook there, and the reply is the one sign of it.
var startTLSReply = []byte("220 2.0.0 Ready to start TLS")

func (c *conn) Read(b []byte) (int, error) {
	if c.dead.Load() {
		return 0, net.ErrClosed
	}
	c.mu.Lock()
	reply, stop := c.stopLocked()
	c.inRead = !stop
	handshaking := !c.hsUntil.IsZero()
	if handshaking && !stop {
		// Under the lock, so that a wake-up (Shutdown, eviction) is not overwritten.
		_ = c.Conn.SetReadDeadline(c.hsUntil)
	}
	c.mu.Unlock()
	if stop {
		c.die(reply)
		return 0, net.ErrClosed
	}
	if err := c.flush(); err != nil {
		c.mu.Lock()
		c.inRead = false
		c.mu.Unlock()
		return 0, err
	}
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.inRead = false
	if err != nil && isTimeout(err) {
		// A deadline passed: the client was too slow, or Shutdown woke us.
		if reply, stop = c.stopLocked(); !stop || reply == "" {
			reply = "421 4.4.2 " + c.srv.opts.Hostname + " Error: timeout exceeded"
			if handshaking {
				c.log.Info("tls handshake timeout", "after", "STARTTLS")
			} else {
				c.log.Info("timeout", "in_transaction", c.inTx)
			}
		}
		c.mu.Unlock()
		c.die(reply)
		// go-smtp ends a session quietly on ErrClosed; any other error would make it
		// write a second reply of its own.
		return n, net.ErrClosed
	}
	c.mu.Unlock()
	return n, err
}

func (c *conn) Write(b []byte) (int, error) {
	if c.dead.Load() {
		return 0, net.ErrClosed
	}
	if bytes.HasPrefix(b, startTLSReply) {
		c.beginHandshake()
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = append(c.wbuf, b...)
	if len(c.wbuf) >= maxPending {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// flush writes the held output.
func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

func (c *conn) flushLocked() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.wbuf)
	if cap(c.wbuf) > 4<<10 {
		c.wbuf = nil // do not keep a burst's buffer for the life of the connection
	} else {
		c.wbuf = c.wbuf[:0]
	}
	return err
}

func (c *conn) Close() error {
	if !c.dead.Load() {
		// Send what is held (a QUIT's 221, a TLS close_notify). The TLS layer has set
		// the write deadline to now on its way here, so set a short one of our own.
		_ = c.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_ = c.flush()
	}
	c.dead.Store(true)
	err := c.Conn.Close()
	c.closed.Do(func() { c.srv.forget(c) })
	return err
}

// die sends reply (if any and if it can be sent) and closes the connection. It runs
// in the session's goroutine, from Read, so nothing else is writing; a TLS layer
// above may be in its Read, which does not stop a Write.
func (c *conn) die(reply string) {
	c.mu.Lock()
	out := c.outer
	c.mu.Unlock()
	if !c.dead.Load() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if reply != "" && out != nil {
			_, _ = out.Write([]byte(reply + "\r\n"))
		}
		_ = c.flush()
	}
	c.dead.Store(true)
	c.Conn.Close()
}

// wakeIfIdle interrupts a read between transactions, so the session ends at once
// (used by Shutdown). A session in a transaction is left to finish it.
func (c *conn) wakeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inRead && !c.inTx {
		_ = c.Conn.SetReadDeadline(time.Now())
	}
}

// SetReadDeadline is called by go-smtp through the TLS layer before each command; the
// first call after STARTTLS therefore means the handshake is over, and the command
// deadline takes over from the handshake's.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.hsUntil = time.Time{}
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// beginHandshake starts the STARTTLS handshake's deadline. Until the next EHLO no
// reply of the server's own may be written in plain text.
func (c *conn) beginHandshake() {
	c.mu.Lock()
	c.hsUntil = time.Now().Add(c.srv.opts.TLSHandshakeTimeout)
	c.outer = nil
	c.mu.Unlock()
}

// handshake runs the TLS handshake of an implicit-TLS connection under its deadline
// and reports whether it succeeded.
func (c *conn) handshake(tc *tls.Conn) bool {
	ctx, cancel := context.WithTimeout(c.srv.ctx, c.srv.opts.TLSHandshakeTimeout)
	defer cancel()
	err := tc.HandshakeContext(ctx)
	switch {
	case err == nil:
		return true
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		c.log.Info("tls handshake timeout")
	default:
		c.log.Debug("tls handshake failed", "err", err)
	}
	return false
}

// evict ends a connection that has not said anything useful yet, because its slot
// went to a newcomer: at its next read, or now if it is waiting in one.
func (c *conn) evict() {
	c.srv.m.ConnectionRefused(c.srv.name, "evicted")
	c.log.Info("connection evicted", "reason", "silent while the connection slots are full")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evicted = true
	_ = c.Conn.SetReadDeadline(time.Now())
}

// wake interrupts any read (the shutdown deadline passed).
func (c *conn) wake() { _ = c.Conn.SetReadDeadline(time.Now()) }

func (c *conn) setOuter(out net.Conn) {
	c.mu.Lock()
	c.outer = out
	c.mu.Unlock()
}

func (c *conn) setInTx(on bool) {
	c.mu.Lock()
	c.inTx = on
	c.mu.Unlock()
}

// closeAfterReply ends the connection once the reply now being sent is out.
func (c *conn) closeAfterReply() {
	c.mu.Lock()
	c.closeNow = true
	c.mu.Unlock()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
