package turn

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/turn/v4"
)

// testOptions is a server on loopback only; the debug logger exercises every log
// call without cluttering test output.
func testOptions(t *testing.T) Options {
	t.Helper()
	return Options{
		ListenAddr:         "127.0.0.1:0",
		PublicIP:           net.IPv4(127, 0, 0, 1),
		Realm:              "test.example",
		SecretFile:         filepath.Join(t.TempDir(), SecretFileName),
		AllowLoopbackPeers: true,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: levelTrace})),
	}
}

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newClient is a pion TURN client on loopback, over UDP or TCP. A short RTO bounds
// every transaction to a few seconds even if the server never answers.
func newClient(t *testing.T, s *Server, network, username, password string) *turn.Client {
	t.Helper()
	var conn net.PacketConn
	var server string
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn, server = pc, s.UDPAddr().String()
	case "tcp":
		c, err := net.DialTimeout("tcp4", s.TCPAddr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn, server = turn.NewSTUNConn(c), s.TCPAddr().String()
	default:
		t.Fatalf("network %q", network)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server,
		TURNServerAddr: server,
		Username:       username,
		Password:       password,
		Conn:           conn,
		RTO:            50 * time.Millisecond,
		LoggerFactory:  pionLogs{log: slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		conn.Close()
	})
	return c
}

func allocate(t *testing.T, c *turn.Client) net.PacketConn {
	t.Helper()
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	t.Cleanup(func() { relay.Close() })
	return relay
}

// relayUntil sends with send until to receives want, and returns the sender's
// address as to saw it. Resending covers a datagram sent before the path was ready.
func relayUntil(t *testing.T, send func() error, to net.PacketConn, want string) net.Addr {
	t.Helper()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if err := send(); err != nil {
			t.Fatalf("send: %v", err)
		}
		to.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, from, err := to.ReadFrom(buf)
		if err == nil && string(buf[:n]) == want {
			return from
		}
	}
	t.Fatalf("%q never arrived at %v", want, to.LocalAddr())
	return nil
}

// silent asserts that nothing arrives at conn for d.
func silent(t *testing.T, conn net.PacketConn, d time.Duration) {
	t.Helper()
	buf := make([]byte, 2048)
	conn.SetReadDeadline(time.Now().Add(d))
	if n, from, err := conn.ReadFrom(buf); err == nil {
		t.Fatalf("got %q from %v, want nothing", buf[:n], from)
	}
}

func sameAddr(a, b net.Addr) bool {
	ua, ok1 := a.(*net.UDPAddr)
	ub, ok2 := b.(*net.UDPAddr)
	return ok1 && ok2 && ua.IP.Equal(ub.IP) && ua.Port == ub.Port
}
