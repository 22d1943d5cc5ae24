package main

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
)

// TestHandshakeListener: HTTPS connections get the handshake deadline: a socket that
// sends no ClientHello is closed at it, and a real client is handed on handshaken.
func TestHandshakeListener(t *testing.T) {
	ca, err := testutil.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 300 * time.Millisecond
	hl := newHandshakeListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}, timeout, slog.New(slog.DiscardHandler))
	defer hl.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := hl.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()

	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, silent); err != nil {
		t.Fatalf("silent socket: %v, want it closed", err)
	}
	if d := time.Since(start); d > timeout+2*time.Second {
		t.Errorf("silent socket closed after %v, want about %v", d, timeout)
	}

	client, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a test certificate
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	select {
	case c := <-accepted:
		tc, ok := c.(*tls.Conn)
		if !ok || !tc.ConnectionState().HandshakeComplete {
			t.Errorf("accepted %T without a finished handshake", c)
		}
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the TLS client was not accepted")
	}
	// Close makes Accept fail.
	hl.Close()
	select {
	case _, open := <-accepted:
		if open {
			t.Error("a connection accepted after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
}
