package alpnmux

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// DefaultHelloTimeout bounds the wait for a client's ClientHello: a socket that says
// nothing must not hold a goroutine and a descriptor for long.
const DefaultHelloTimeout = 10 * time.Second

// maxHello bounds the bytes read while looking for the ClientHello (TLS records are
// at most 16 KiB plus header; a hello spanning more is refused).
const maxHello = 32 << 10

// Mux accepts connections on one listener and routes each to a virtual listener.
type Mux struct {
	l        net.Listener
	timeout  time.Duration
	log      *slog.Logger
	routes   []route
	fallback *vlistener
	closed   chan struct{}
	once     sync.Once
}

type route struct {
	protos []string
	l      *vlistener
}

// New returns a Mux over l. Routes are added with Route and Default before Serve.
func New(l net.Listener, helloTimeout time.Duration, log *slog.Logger) *Mux {
	if helloTimeout <= 0 {
		helloTimeout = DefaultHelloTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mux{l: l, timeout: helloTimeout, log: log, closed: make(chan struct{})}
	m.fallback = m.newListener()
	return m
}

// Route returns the listener that gets connections whose client offers any of
// protos (checked in the order routes were added).
func (m *Mux) Route(protos ...string) net.Listener {
	vl := m.newListener()
	m.routes = append(m.routes, route{protos: protos, l: vl})
	return vl
}

// Default returns the listener for every other connection, ALPN or not.
func (m *Mux) Default() net.Listener { return m.fallback }

func (m *Mux) newListener() *vlistener {
	return &vlistener{addr: m.l.Addr(), conns: make(chan net.Conn), closed: m.closed, done: make(chan struct{})}
}

// Serve accepts until the underlying listener fails or ctx ends; then every virtual
// listener reports net.ErrClosed.
func (m *Mux) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { m.Close() })
	defer stop()
	defer m.Close()
	for {
		c, err := m.l.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept on %s: %w", m.l.Addr(), err)
		}
		go m.dispatch(c)
	}
}

// Close stops the Mux and its listeners.
func (m *Mux) Close() error {
	var err error
	m.once.Do(func() {
		close(m.closed)
		err = m.l.Close()
	})
	return err
}

func (m *Mux) dispatch(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(m.timeout))
	protos, hello, err := peekHello(c)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		m.log.Debug("alpnmux: no ClientHello", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	vl := m.fallback
	for _, r := range m.routes {
		if slices.ContainsFunc(protos, func(p string) bool { return slices.Contains(r.protos, p) }) {
			vl = r.l
			break
		}
	}
	rc := &replayConn{Conn: c, pending: hello}
	select {
	case vl.conns <- rc:
	case <-vl.done:
		c.Close()
	case <-m.closed:
		c.Close()
	}
}

// errHelloSeen ends the sham handshake of peekHello once the hello is parsed.
var errHelloSeen = errors.New("client hello seen")

// peekHello reads c until crypto/tls has parsed the ClientHello and returns the ALPN
// protocols it offers and every byte read. crypto/tls does the parsing, over a
// connection that records what it reads and swallows what it would write.
func peekHello(c net.Conn) ([]string, []byte, error) {
	rec := &recorder{r: c}
	var protos []string
	seen := false
	srv := tls.Server(rec, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		protos, seen = slices.Clone(h.SupportedProtos), true
		return nil, errHelloSeen
	}})
	err := srv.Handshake()
	if !seen {
		if err == nil {
			err = errors.New("handshake ended without a ClientHello")
		}
		return nil, nil, err
	}
	return protos, rec.buf.Bytes(), nil
}

// recorder is the connection peekHello's sham handshake runs over.
type recorder struct {
	r   io.Reader
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	if r.buf.Len() >= maxHello {
		return 0, errors.New("ClientHello too long")
	}
	n, err := r.r.Read(p[:min(len(p), maxHello-r.buf.Len())])
	r.buf.Write(p[:n])
	return n, err
}

func (r *recorder) Write(p []byte) (int, error)      { return len(p), nil }
func (r *recorder) Close() error                     { return nil }
func (r *recorder) LocalAddr() net.Addr              { return nil }
func (r *recorder) RemoteAddr() net.Addr             { return nil }
func (r *recorder) SetDeadline(time.Time) error      { return nil }
func (r *recorder) SetReadDeadline(time.Time) error  { return nil }
func (r *recorder) SetWriteDeadline(time.Time) error { return nil }

// replayConn is a connection whose first reads return bytes already read from it.
type replayConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// vlistener is one route's listener. Closing it stops its server's Accept and turns
// away its later connections; the port stays open for the other routes.
type vlistener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{} // the Mux's
	done   chan struct{} // this listener's
	once   sync.Once
}

func (l *vlistener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *vlistener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *vlistener) Addr() net.Addr { return l.addr }
