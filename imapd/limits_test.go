package imapd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialFrom connects to addr from a chosen loopback address.
func dialFrom(t *testing.T, addr, ip string) *lineConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &lineConn{t: t, c: c, r: bufio.NewReader(c), w: c}
}

// expectClosed waits for the server to close the connection.
func (l *lineConn) expectClosed() {
	l.t.Helper()
	_ = l.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := l.r.ReadString('\n')
	if err == nil {
		l.t.Fatalf("got %q, want the connection closed", line)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		l.t.Fatal("connection still open")
	}
}

// TestGlobalConnectionLimit: limits.imap_connections holds over all clients; when it
// is reached, a connection not logged in yet gives way to the newcomer, and once every
// connection is logged in, newcomers get a BYE.
func TestGlobalConnectionLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.MaxConns = 2 })
	a := dialFrom(t, e.addr, "127.0.0.1")
	a.expect("* OK <*>")
	a.send("a1 LOGIN alice@example.org password123")
	a.expect("a1 OK <*>")
	silent := dialFrom(t, e.addr, "127.0.0.2")
	silent.expect("* OK <*>")

	b := dialFrom(t, e.addr, "127.0.0.3")
	b.expect("* OK <*>")
	silent.expect("* BYE [UNAVAILABLE] Too many connections to this server; try again later")
	silent.expectClosed()
	b.send("b1 LOGIN alice@example.org password123")
	b.expect("b1 OK <*>")

	full := dialFrom(t, e.addr, "127.0.0.4")
	full.expect("* BYE [UNAVAILABLE] Too many connections to this server; try again later")
	full.expectClosed()

	// A logout makes room.
	a.send("a2 LOGOUT")
	a.expect("* BYE Logging out")
	a.expect("a2 OK LOGOUT completed")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialFrom(t, e.addr, "127.0.0.4")
		_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := c.r.ReadString('\n')
		c.c.Close()
		if strings.HasPrefix(line, "* OK ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a logout still greeted with %q", line)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGlobalConnectionLimitTLS: on port 993 the BYE of a full server arrives over TLS.
func TestGlobalConnectionLimitTLS(t *testing.T) {
	cfg := testTLSConfig(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig, o.ImplicitTLS, o.Limits.MaxConns = cfg, true, 1 })
	dialTLS := func() *lineConn {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &lineConn{t: t, c: c, r: bufio.NewReader(c), w: c}
	}
	a := dialTLS()
	a.expect("* OK <*>")
	a.send("a1 LOGIN alice@example.org password123")
	a.expect("a1 OK <*>")
	b := dialTLS()
	b.expect("* BYE [UNAVAILABLE] Too many connections to this server; try again later")
}

func TestConnectionPrefixes(t *testing.T) {
	tests := []struct {
		name   string
		prefix int
		second string // greeting of the second client, 127.0.0.2 after 127.0.0.1
	}{
		{"addresses count singly by default", 0, "* OK <*>"},
		{"a /24 counts as one client", 24, "* BYE [UNAVAILABLE] Too many connections from your address (limit 1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Limits.MaxConnsPerIP, o.Limits.IPv4Prefix = 1, tc.prefix })
			dialFrom(t, e.addr, "127.0.0.1").expect("* OK <*>")
			dialFrom(t, e.addr, "127.0.0.2").expect(tc.second)
		})
	}
}

func TestTLSHandshakeTimeout(t *testing.T) {
	const hs = 300 * time.Millisecond
	cfg := testTLSConfig(t)
	closedWithin := func(t *testing.T, c net.Conn, r io.Reader, max time.Duration) {
		t.Helper()
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, r); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("connection still open")
		}
		if d := time.Since(start); d > max {
			t.Errorf("closed after %v, want at most %v", d, max)
		}
	}
	t.Run("993 without ClientHello", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.TLSConfig, o.ImplicitTLS, o.Limits.TLSHandshakeTimeout = cfg, true, hs })
		c := dialFrom(t, e.addr, "127.0.0.1")
		closedWithin(t, c.c, c.r, hs+2*time.Second)
	})
	t.Run("STARTTLS without ClientHello", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.TLSConfig, o.Limits.TLSHandshakeTimeout = cfg, hs })
		c := dialFrom(t, e.addr, "127.0.0.1")
		c.expect("* OK <*>")
		c.send("a1 STARTTLS")
		c.expect("a1 OK Begin TLS negotiation now")
		closedWithin(t, c.c, c.r, hs+2*time.Second)
	})
	t.Run("after the handshake the idle timeout applies", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.TLSConfig, o.ImplicitTLS, o.Limits.TLSHandshakeTimeout = cfg, true, hs })
		c, err := tls.Dial("tcp", e.addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		l := &lineConn{t: t, c: c, r: bufio.NewReader(c), w: c}
		l.expect("* OK <*>")
		time.Sleep(3 * hs)
		l.send("a1 NOOP")
		l.expect("a1 OK <*>")
	})
}

// syncBuffer collects log output while the server writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAuthLogLines: failed logins are logged in the one format fail2ban reads, with
// the address and account in fixed places and never the password; logins and logouts
// are logged at info level.
func TestAuthLogLines(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil)).With("pkg", "imapd", "listener", "imap")
	})
	const secret = "guessed-Secret-123"
	c := dialFrom(t, e.addr, "127.0.0.1")
	c.expect("* OK <*>")
	c.send("a1 LOGIN alice@example.org " + secret)
	c.expect("a1 NO [AUTHENTICATIONFAILED] Authentication failed.")
	c.send(`a2 LOGIN "x remote=192.0.2.9" ` + secret)
	c.expect("a2 NO [AUTHENTICATIONFAILED] Authentication failed.")
	c.send("a3 LOGIN alice@example.org password123")
	c.expect("a3 OK <*>")
	c.send("a4 LOGOUT")
	c.expect("* BYE Logging out")
	c.expect("a4 OK LOGOUT completed")
	c.expectClosed()

	var out string
	logout := regexp.MustCompile(`(?m)^time=\S+ level=INFO msg="imap: logout" pkg=imapd listener=imap remote=127\.0\.0\.1:\d+ account=alice@example\.org protocol=imap reason=LOGOUT duration=\S+$`)
	deadline := time.Now().Add(5 * time.Second)
	for out = logs.String(); !logout.MatchString(out) && time.Now().Before(deadline); out = logs.String() {
		time.Sleep(10 * time.Millisecond)
	}
	failed := regexp.MustCompile(`(?m)^time=\S+ level=WARN msg="authentication failed" pkg=imapd listener=imap protocol=imap remote=127\.0\.0\.1 account=(\S+|"[^"]*") reason="bad credentials"$`)
	got := failed.FindAllStringSubmatch(out, -1)
	if len(got) != 2 || got[0][1] != "alice@example.org" || got[1][1] != `"x remote=192.0.2.9"` {
		t.Errorf("authentication failure lines: %q\nlog:\n%s", got, out)
	}
	login := regexp.MustCompile(`(?m)^time=\S+ level=INFO msg="imap: login" pkg=imapd listener=imap remote=127\.0\.0\.1:\d+ protocol=imap account=alice@example\.org tls=false$`)
	if !login.MatchString(out) {
		t.Errorf("no login line:\n%s", out)
	}
	if !logout.MatchString(out) {
		t.Errorf("no logout line:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the password is in the log:\n%s", out)
	}
}

// TestConnsShared: two Servers sharing one Conns (ports 143 and 993) share its limits.
func TestConnsShared(t *testing.T) {
	conns := NewConns(1, 10, 0, 0)
	a := newEnv(t, func(o *Options) { o.Conns = conns })
	b := newEnv(t, func(o *Options) { o.Conns = conns })
	c := dialFrom(t, a.addr, "127.0.0.1")
	c.expect("* OK <*>")
	c.send("a1 LOGIN alice@example.org password123")
	c.expect("a1 OK <*>")
	dialFrom(t, b.addr, "127.0.0.2").expect("* BYE [UNAVAILABLE] Too many connections to this server; try again later")
}
