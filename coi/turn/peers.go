package turn

import (
	"net"
	"net/netip"

	"github.com/coibox/coibox/internal/netblock"
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
}

func newPeerFilter(allowLoopback bool, public netip.Addr, own []netip.Addr) *peerFilter {
	f := &peerFilter{
		allowLoopback: allowLoopback,
		public:        public.Unmap(),
		own:           map[netip.Addr]bool{},
	}
	f.own[f.public] = true
	for _, a := range own {
		f.own[a.Unmap()] = true
	}
	f.publicPeerOK = f.public.IsValid() && f.globalUnicast(f.public)
	return f
}

// globalUnicast reports whether a is an address a peer on the Internet may have.
func (f *peerFilter) globalUnicast(a netip.Addr) bool { return netblock.Public(a) }

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
