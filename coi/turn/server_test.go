package turn

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

func TestRelay(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			srv := startServer(t, testOptions(t))
			user, pass, _ := srv.Secret().Credentials(time.Now())
			relayA := allocate(t, newClient(t, srv, network, user, pass))
			b := newClient(t, srv, network, user, pass)
			relayB := allocate(t, b)

			if got := relayA.LocalAddr().(*net.UDPAddr).IP; !got.Equal(net.IPv4(127, 0, 0, 1)) {
				t.Fatalf("relayed address %v, want the public IP 127.0.0.1", relayA.LocalAddr())
			}
			if n := srv.Allocations(); n != 2 {
				t.Fatalf("Allocations() = %d, want 2", n)
			}

			// A client and a plain peer, both ways.
			peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			from := relayUntil(t, func() error {
				_, err := relayA.WriteTo([]byte("to peer"), peer.LocalAddr())
				return err
			}, peer, "to peer")
			if !sameAddr(from, relayA.LocalAddr()) {
				t.Fatalf("peer got data from %v, want the relay address %v", from, relayA.LocalAddr())
			}
			from = relayUntil(t, func() error {
				_, err := peer.WriteTo([]byte("to client"), relayA.LocalAddr())
				return err
			}, relayA, "to client")
			if !sameAddr(from, peer.LocalAddr()) {
				t.Fatalf("client got data from %v, want the peer %v", from, peer.LocalAddr())
			}

			// Two allocations on this server, relay to relay, as two callers use it.
			if err := b.CreatePermission(relayA.LocalAddr()); err != nil {
				t.Fatalf("CreatePermission: %v", err)
			}
			from = relayUntil(t, func() error {
				_, err := relayA.WriteTo([]byte("a to b"), relayB.LocalAddr())
				return err
			}, relayB, "a to b")
			if !sameAddr(from, relayA.LocalAddr()) {
				t.Fatalf("b got data from %v, want a's relay %v", from, relayA.LocalAddr())
			}
		})
	}
}

func TestAuthRefused(t *testing.T) {
	srv := startServer(t, testOptions(t))
	now := time.Now()
	user, pass, _ := srv.Secret().Credentials(now)
	oldUser, oldPass, oldExpiry := srv.Secret().Credentials(now.Add(-CredentialLifetime - 2*CredentialStep))
	if !oldExpiry.Before(now) {
		t.Fatalf("test credentials expire %v, not in the past", oldExpiry)
	}
	other, err := NewSecret([]byte("some other server's secret"))
	if err != nil {
		t.Fatal(err)
	}
	_, otherPass, _ := other.Credentials(now)
	tests := []struct {
		name, user, pass string
	}{
		{"wrong password", user, "x" + pass},
		{"another server's password", user, otherPass},
		{"expired", oldUser, oldPass},
		{"username not a time", "alice", pass},
		{"username with sign", "+" + user, pass},
		{"later expiry, same password", user + "0", pass},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, srv, "udp", tc.user, tc.pass)
			if relay, err := c.Allocate(); err == nil {
				relay.Close()
				t.Fatal("Allocate succeeded, want refusal")
			}
		})
	}
	if n := srv.Allocations(); n != 0 {
		t.Fatalf("Allocations() = %d, want 0", n)
	}
}

func TestPeerFilterRefusesLoopback(t *testing.T) {
	opts := testOptions(t)
	opts.AllowLoopbackPeers = false
	srv := startServer(t, opts)
	user, pass, _ := srv.Secret().Credentials(time.Now())
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c := newClient(t, srv, network, user, pass)
			relay := allocate(t, c) // the client itself may be anywhere

			peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			if err := c.CreatePermission(peer.LocalAddr()); err == nil {
				t.Fatal("CreatePermission to 127.0.0.1 succeeded, want refusal")
			}
			if _, err := relay.WriteTo([]byte("hello"), peer.LocalAddr()); err == nil {
				t.Fatal("WriteTo 127.0.0.1 succeeded, want refusal")
			}
			// Not even the relay address itself: it is loopback, not public, here.
			if err := c.CreatePermission(relay.LocalAddr()); err == nil {
				t.Fatal("CreatePermission to the relay address succeeded, want refusal")
			}
			silent(t, peer, 300*time.Millisecond)
		})
	}
}

func TestAllocationQuota(t *testing.T) {
	opts := testOptions(t)
	opts.MaxAllocationsPerUser = 2
	srv := startServer(t, opts)
	now := time.Now()
	user, pass, _ := srv.Secret().Credentials(now)

	first := allocate(t, newClient(t, srv, "udp", user, pass))
	allocate(t, newClient(t, srv, "tcp", user, pass))
	third := newClient(t, srv, "udp", user, pass)
	_, err := third.Allocate()
	var te *stun.TurnError
	if !errors.As(err, &te) || te.ErrorCodeAttr.Code != stun.CodeAllocQuotaReached {
		t.Fatalf("third Allocate: %v, want 486 Allocation Quota Reached", err)
	}

	// Credentials of another hour are another user, even from the same address.
	oldUser, oldPass, _ := srv.Secret().Credentials(now.Add(-CredentialStep))
	allocate(t, newClient(t, srv, "udp", oldUser, oldPass))

	// Ending an allocation frees its slot.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		relay, err := third.Allocate()
		if err == nil {
			relay.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Allocate after a slot was freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBandwidthLimit(t *testing.T) {
	const rate = 10_000 // bytes/s; the bucket holds minBurst
	opts := testOptions(t)
	opts.MaxBandwidthPerUser = rate
	srv := startServer(t, opts)
	user, pass, _ := srv.Secret().Credentials(time.Now())
	c := newClient(t, srv, "udp", user, pass)
	relay := allocate(t, c)
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := c.CreatePermission(peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}

	packet := make([]byte, 1000)
	for range 80 {
		if _, err := peer.WriteTo(packet, relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	got := 0
	for {
		relay.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := relay.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	t.Logf("%d of 80 packets relayed", got)
	// 80 kB offered at once: the burst (16 KiB) passes, plus what trickles in meanwhile.
	if lo, hi := 5, minBurst/len(packet)+8; got < lo || got > hi {
		t.Fatalf("%d of 80 packets relayed, want %d..%d", got, lo, hi)
	}

	// Dropping did not end the allocation, and the budget refills.
	time.Sleep(200 * time.Millisecond)
	relayUntil(t, func() error {
		_, err := peer.WriteTo([]byte("later"), relay.LocalAddr())
		return err
	}, relay, "later")
}

func TestSecretSurvivesRestart(t *testing.T) {
	opts := testOptions(t)
	now := time.Now()
	srv1 := startServer(t, opts)
	user, pass, _ := srv1.Secret().Credentials(now)
	before, err := os.ReadFile(opts.SecretFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv1.Close(); err != nil {
		t.Fatal(err)
	}

	srv2 := startServer(t, opts)
	user2, pass2, _ := srv2.Secret().Credentials(now)
	if user2 != user || pass2 != pass {
		t.Fatalf("credentials after restart %s/%s, want %s/%s", user2, pass2, user, pass)
	}
	after, err := os.ReadFile(opts.SecretFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Fatal("secret file changed across restart")
	}
	// Credentials a client got before the restart still work.
	allocate(t, newClient(t, srv2, "udp", user, pass))
}

func TestNewRejectsBadOptions(t *testing.T) {
	base := testOptions(t)
	tests := []struct {
		name   string
		modify func(*Options)
	}{
		{"no secret file", func(o *Options) { o.SecretFile = "" }},
		{"host name", func(o *Options) { o.ListenAddr = "localhost:0" }},
		{"no port", func(o *Options) { o.ListenAddr = "127.0.0.1" }},
		{"no public IP", func(o *Options) { o.ListenAddr, o.PublicIP = ":0", nil }},
		{"IPv6 public IP", func(o *Options) { o.PublicIP = net.ParseIP("2001:db8::1") }},
		{"negative limit", func(o *Options) { o.MaxAllocationsPerUser = -1 }},
		{"inverted port range", func(o *Options) { o.RelayMinPort, o.RelayMaxPort = 50000, 40000 }},
		{"secret dir missing", func(o *Options) { o.SecretFile = "/nonexistent/dir/" + SecretFileName }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := base
			tc.modify(&opts)
			s, err := New(context.Background(), opts)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func TestRelayPortRange(t *testing.T) {
	opts := testOptions(t)
	opts.RelayMinPort, opts.RelayMaxPort = 41000, 41999
	srv := startServer(t, opts)
	user, pass, _ := srv.Secret().Credentials(time.Now())
	relay := allocate(t, newClient(t, srv, "udp", user, pass))
	if p := relay.LocalAddr().(*net.UDPAddr).Port; p < 41000 || p > 41999 {
		t.Fatalf("relay port %d outside 41000-41999", p)
	}
}
