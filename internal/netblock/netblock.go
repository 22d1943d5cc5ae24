// Package netblock answers two questions about client and peer addresses, in one
// place for every listener: which block an address counts in, and whether it is public.
package netblock

import "net/netip"

// Client is the address a per-client count is kept under: ip itself, or the first
// address of its IPv4 /v4 or IPv6 /v6 block (one household or one cloud customer
// gets one IPv6 /64, so counting single IPv6 addresses counts nothing).
func Client(ip netip.Addr, v4, v6 int) netip.Addr {
	ip = ip.Unmap()
	bits := v6
	if ip.Is4() {
		bits = v4
	}
	if p, err := ip.Prefix(bits); err == nil {
		return p.Addr()
	}
	return ip
}

// special are ranges net/netip has no predicate for that no Internet host has but
// that may reach the server itself or its networks.
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT, some clouds' metadata (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds an IPv4 address of any kind
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2002::/16"),       // 6to4: same
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/32"),       // Teredo: same
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
}

// Public reports whether a is an address a host on the Internet may have: not
// loopback, private, link-local, multicast, unspecified, nor in a special range. The
// server must not be made to connect elsewhere on a client's say-so (SSRF).
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsPrivate() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() ||
		a.IsMulticast() {
		return false
	}
	for _, p := range special {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
