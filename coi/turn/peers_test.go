package turn

import (
	"net"
	"net/netip"
	"testing"
)

func TestPeerFilter(t *testing.T) {
	public := netip.MustParseAddr("203.0.113.7")
	own := []netip.Addr{netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("2001:db8:1::9")}
	tests := []struct {
		peer                 string
		strict, withLoopback bool // permitted without / with AllowLoopbackPeers
	}{
		{"8.8.8.8", true, true},
		{"2001:4860:4860::8888", true, true},
		{"::ffff:8.8.8.8", true, true},
		{"203.0.113.7", true, true},   // relay address: callers on this server reach each other
		{"198.51.100.9", false, true}, // another address of this host
		{"2001:db8:1::9", false, true},
		{"127.0.0.1", false, true},
		{"127.1.2.3", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"10.1.2.3", false, false},
		{"172.16.0.1", false, false},
		{"172.31.255.255", false, false},
		{"192.168.1.1", false, false},
		{"::ffff:192.168.1.1", false, false},
		{"fd00::1", false, false},
		{"fc00::1", false, false},
		{"169.254.169.254", false, false}, // cloud metadata service
		{"fe80::1", false, false},
		{"0.0.0.0", false, false},
		{"0.1.2.3", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"239.255.255.250", false, false},
		{"ff02::1", false, false},
		{"ff05::2", false, false},
		{"255.255.255.255", false, false},
		{"240.0.0.1", false, false},
		{"100.64.0.1", false, false},
		{"198.18.0.1", false, false},
		{"192.0.0.8", false, false},
		{"64:ff9b::a00:1", false, false},  // NAT64 of 10.0.0.1
		{"2002:a00:1::1", false, false},   // 6to4 of 10.0.0.1
		{"2001:0:a00:1::1", false, false}, // Teredo
	}
	strict := newPeerFilter(false, public, own)
	loose := newPeerFilter(true, public, own)
	for _, tc := range tests {
		ip := net.ParseIP(tc.peer)
		if ip == nil {
			t.Fatalf("bad test address %q", tc.peer)
		}
		if got := strict.permit(ip); got != tc.strict {
			t.Errorf("permit(%s) = %v, want %v", tc.peer, got, tc.strict)
		}
		if got := loose.permit(ip); got != tc.withLoopback {
			t.Errorf("with loopback peers: permit(%s) = %v, want %v", tc.peer, got, tc.withLoopback)
		}
	}
	if strict.permit(net.IP{1, 2, 3}) {
		t.Error("permit accepted a malformed IP")
	}
}

// The relay address is refused as a peer when it is not public itself: otherwise a
// server configured with a private or loopback relay address would open it.
func TestPeerFilterPrivateRelayAddress(t *testing.T) {
	for _, public := range []string{"127.0.0.1", "10.0.0.5", "192.168.1.2"} {
		f := newPeerFilter(false, netip.MustParseAddr(public), nil)
		if f.permit(net.ParseIP(public)) {
			t.Errorf("relay address %s permitted as a peer", public)
		}
	}
}

func TestPeerAddrOK(t *testing.T) {
	public := netip.MustParseAddr("203.0.113.7")
	g := newRelayGenerator(nil, newPeerFilter(false, public, nil))
	g.ports[40000] = &relayConn{g: g, port: 40000}
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{&net.UDPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40000}, true}, // another caller's relay
		{&net.UDPAddr{IP: net.ParseIP("203.0.113.7"), Port: 3478}, false}, // the TURN listener
		{&net.UDPAddr{IP: net.ParseIP("203.0.113.7"), Port: 53}, false},   // a DNS server on the host
		{&net.UDPAddr{IP: net.ParseIP("::ffff:203.0.113.7"), Port: 53}, false},
		{&net.UDPAddr{IP: net.ParseIP("8.8.8.8"), Port: 53}, true},
		{&net.TCPAddr{IP: net.ParseIP("8.8.8.8"), Port: 53}, false},
	}
	for _, tc := range tests {
		if got := g.peerAddrOK(tc.addr); got != tc.want {
			t.Errorf("peerAddrOK(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	g.release(g.ports[40000])
	if g.peerAddrOK(&net.UDPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40000}) {
		t.Error("released relay port still accepted")
	}
}
