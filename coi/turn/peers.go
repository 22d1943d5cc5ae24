package turn

import (
	"net"
	"net/netip"
)

// peerFilter decides which peers a client may relay to. A TURN server on a public
// host is otherwise an open door into the host's loopback services and the networks
// behind it, so only addresses that any Internet host could reach anyway are allowed.
type peerFilter struct {
	allowLoopback bool
	// public is the advertised relay address. Two callers on this server reach each
	// other relay to relay, so it is allowed at permission level when it is itself
	// public; the relay sockets then admit only its relay ports (see peerAddrOK).
	public       netip.Addr
	publicPeerOK bool
	own          map[netip.Addr]bool
	special      []netip.Prefix
}

func newPeerFilter(allowLoopback bool, public netip.Addr, own []netip.Addr) *peerFilter {
	f := &peerFilter{
		allowLoopback: allowLoopback,
		public:        public.Unmap(),
		own:           map[netip.Addr]bool{},
		// Ranges net/netip has no predicate for that are never a real client's address.
		special: []netip.Prefix{
			netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
			netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT (RFC 6598)
			netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
			netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
			netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
			netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: hides an IPv4 target we cannot vet
			netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
			netip.MustParsePrefix("2002::/16"),       // 6to4: same
			netip.MustParsePrefix("100::/64"),        // discard
			netip.MustParsePrefix("2001::/32"),       // Teredo: same
			netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
		},
	}
	f.own[f.public] = true
	for _, a := range own {
		f.own[a.Unmap()] = true
	}
	f.publicPeerOK = f.public.IsValid() && f.globalUnicast(f.public)
	return f
}

// globalUnicast reports whether a is an address a peer on the Internet may have.
func (f *peerFilter) globalUnicast(a netip.Addr) bool {
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() ||
		a.IsPrivate() {
		return false
	}
	for _, p := range f.special {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// permit is the CreatePermission and ChannelBind check; TURN permissions are per IP.
func (f *peerFilter) permit(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	if f.allowLoopback && (a.IsLoopback() || f.own[a]) {
		return true
	}
	if a == f.public {
		return f.publicPeerOK
	}
	return !f.own[a] && f.globalUnicast(a)
}
