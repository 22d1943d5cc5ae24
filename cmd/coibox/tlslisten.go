package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// handshakeListener returns TLS connections only once their handshake is done, each
// handshake running in its own goroutine under timeout (limits.tls_handshake_timeout).
// http.Server would otherwise run it under its own header timeout, and could only be
// given a shorter one by shortening that too.
type handshakeListener struct {
	l       net.Listener
	cfg     *tls.Config
	timeout time.Duration
	log     *slog.Logger

	ready chan net.Conn
	done  chan struct{}
	err   error
	once  sync.Once
}

func newHandshakeListener(l net.Listener, cfg *tls.Config, timeout time.Duration, log *slog.Logger) *handshakeListener {
	hl := &handshakeListener{l: l, cfg: cfg, timeout: timeout, log: log, ready: make(chan net.Conn), done: make(chan struct{})}
	go hl.acceptLoop()
	return hl
}

func (hl *handshakeListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := hl.l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off, keep serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			hl.stop(err)
			return
		}
		delay = 0
		go hl.handshake(c)
	}
}

func (hl *handshakeListener) handshake(c net.Conn) {
	tc := tls.Server(c, hl.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), hl.timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			hl.log.Info("tls handshake timeout", "remote", c.RemoteAddr().String())
		} else {
			hl.log.Debug("tls handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		}
		c.Close()
		return
	}
	select {
	case hl.ready <- tc:
	case <-hl.done:
		tc.Close()
	}
}

func (hl *handshakeListener) stop(err error) {
	hl.once.Do(func() { hl.err = err; close(hl.done) })
}

func (hl *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-hl.ready:
		return c, nil
	case <-hl.done:
		return nil, hl.err
	}
}

func (hl *handshakeListener) Close() error {
	err := hl.l.Close()
	hl.stop(net.ErrClosed)
	return err
}

func (hl *handshakeListener) Addr() net.Addr { return hl.l.Addr() }
