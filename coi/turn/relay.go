package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coibox/coibox/internal/netblock"
	"github.com/pion/turn/v4"
)

var _ turn.RelayAddressGenerator = (*relayGenerator)(nil)

// relayGenerator hands pion relay sockets that enforce what pion's hooks cannot: the
// per-user bandwidth budget and the port check for relaying to the server's own
// public address. It wraps one of pion's generators, which bind and pick the ports.
type relayGenerator struct {
	inner  turn.RelayAddressGenerator
	filter *peerFilter

	mu    sync.Mutex
	ports map[int]*relayConn // live relay sockets by local port
}

func newRelayGenerator(inner turn.RelayAddressGenerator, filter *peerFilter) *relayGenerator {
	return &relayGenerator{inner: inner, filter: filter, ports: map[int]*relayConn{}}
}

func (g *relayGenerator) Validate() error {
	if err := g.inner.Validate(); err != nil {
		return fmt.Errorf("validate relay addresses: %w", err)
	}
	return nil
}

func (g *relayGenerator) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	conn, addr, err := g.inner.AllocatePacketConn(network, requestedPort)
	if err != nil {
		return nil, nil, fmt.Errorf("allocate relay socket: %w", err)
	}
	local, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		conn.Close()
		return nil, nil, fmt.Errorf("allocate relay socket: unexpected address %v", conn.LocalAddr())
	}
	rc := &relayConn{PacketConn: conn, g: g, port: local.Port}
	g.mu.Lock()
	g.ports[rc.port] = rc
	g.mu.Unlock()
	return rc, addr, nil
}

// AllocateConn is for TCP relaying (RFC 6062), which pion's generators do not
// implement either; clients may still reach the server over TCP and relay UDP.
func (g *relayGenerator) AllocateConn(network string, requestedPort int) (net.Conn, net.Addr, error) {
	conn, addr, err := g.inner.AllocateConn(network, requestedPort)
	if err != nil {
		return nil, nil, fmt.Errorf("allocate relay connection: %w", err)
	}
	return conn, addr, nil
}

// attach gives the relay socket on port its owner's bandwidth budget. pion reports
// the owner only after the socket exists, and before it relays anything.
func (g *relayGenerator) attach(port int, b *tokenBucket) {
	g.mu.Lock()
	rc := g.ports[port]
	g.mu.Unlock()
	if rc != nil && b != nil {
		rc.bucket.Store(b)
	}
}

func (g *relayGenerator) release(rc *relayConn) {
	g.mu.Lock()
	if g.ports[rc.port] == rc {
		delete(g.ports, rc.port)
	}
	g.mu.Unlock()
}

// peerAddrOK is the per-port half of the peer filter: the server's public address
// is a permitted peer only so that callers on this server can reach each other's
// relay sockets, not the TURN listener or any other service on that address.
func (g *relayGenerator) peerAddrOK(addr net.Addr) bool {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return false
	}
	if g.filter.allowLoopback || ip.Unmap() != g.filter.public {
		return true
	}
	g.mu.Lock()
	_, live := g.ports[ua.Port]
	g.mu.Unlock()
	return live
}

var errPeerRefused = errors.New("peer address refused")

// relayConn is one allocation's relay socket. Writes carry the client's data to
// peers, reads carry peers' data back to the client; both spend the owner's budget.
// Over budget, datagrams are dropped as a congested link would drop them: media
// codecs adapt to loss, while an error would make pion tear the allocation down.
type relayConn struct {
	net.PacketConn
	g         *relayGenerator
	port      int
	bucket    atomic.Pointer[tokenBucket]
	closeOnce sync.Once
}

func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.g.peerAddrOK(addr) {
		return 0, fmt.Errorf("relay to %v: %w", addr, errPeerRefused)
	}
	if b := c.bucket.Load(); b != nil && !b.allow(len(p), time.Now()) {
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if err != nil {
		return n, fmt.Errorf("relay to %v: %w", addr, err)
	}
	return n, nil
}

func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if !c.g.peerAddrOK(addr) {
			continue
		}
		if b := c.bucket.Load(); b != nil && !b.allow(n, time.Now()) {
			continue
		}
		return n, addr, nil
	}
}

func (c *relayConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.g.release(c)
		err = c.PacketConn.Close()
	})
	return err
}

// tokenBucket is a byte budget refilled at rate bytes per second up to burst.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// minBurst lets at least a few full-size datagrams through even at tiny rates, so a
// low limit slows a call down instead of breaking every packet.
const minBurst = 16 * 1024

func newTokenBucket(rate int64, now time.Time) *tokenBucket {
	burst := float64(rate)
	if burst < minBurst {
		burst = minBurst
	}
	return &tokenBucket{rate: float64(rate), burst: burst, tokens: burst, last: now}
}

func (b *tokenBucket) allow(n int, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.tokens += d.Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
		b.last = now
	}
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// users tracks allocations and bandwidth per user. The username alone names no one
// (every client issued credentials within the same CredentialStep shares it), so a
// user is a username together with the client's IPv4 address or IPv6 /64: one IPv6
// host has a whole /64 to pick source addresses from.
type users struct {
	maxAllocs int
	rate      int64

	mu sync.Mutex
	m  map[userKey]*user
}

type userKey struct {
	username string
	ip       netip.Addr
}

type user struct {
	live    int
	pending []time.Time // quota granted, allocation not yet reported
	bucket  *tokenBucket
}

// pendingTimeout bounds how long a granted quota slot waits for its allocation;
// pion creates the allocation right after asking, so only a failed one lingers.
const pendingTimeout = 10 * time.Second

func newUsers(maxAllocs int, rate int64) *users {
	return &users{maxAllocs: maxAllocs, rate: rate, m: map[userKey]*user{}}
}

func keyOf(username string, addr net.Addr) userKey {
	return userKey{username: username, ip: netblock.Client(addrIP(addr), 32, 64)}
}

func addrIP(addr net.Addr) netip.Addr {
	var ip net.IP
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	default:
		if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
			return ap.Addr().Unmap()
		}
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// reserve grants one more allocation to k unless that exceeds the limit. Reserving
// rather than counting on creation keeps concurrent requests (UDP and several TCP
// connections are served in parallel) from overshooting.
func (u *users) reserve(k userKey, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	us := u.get(k, now)
	kept := us.pending[:0]
	for _, t := range us.pending {
		if now.Sub(t) < pendingTimeout {
			kept = append(kept, t)
		}
	}
	us.pending = kept
	if u.maxAllocs > 0 && us.live+len(us.pending) >= u.maxAllocs {
		u.drop(k, us)
		return false
	}
	us.pending = append(us.pending, now)
	return true
}

// created turns a reservation into a live allocation and returns k's bandwidth
// budget, nil when unlimited.
func (u *users) created(k userKey, now time.Time) *tokenBucket {
	u.mu.Lock()
	defer u.mu.Unlock()
	us := u.get(k, now)
	if len(us.pending) > 0 {
		us.pending = us.pending[1:]
	}
	us.live++
	return us.bucket
}

func (u *users) deleted(k userKey) {
	u.mu.Lock()
	defer u.mu.Unlock()
	us := u.m[k]
	if us == nil {
		return
	}
	if us.live > 0 {
		us.live--
	}
	u.drop(k, us)
}

func (u *users) get(k userKey, now time.Time) *user {
	us := u.m[k]
	if us == nil {
		us = &user{}
		if u.rate > 0 {
			us.bucket = newTokenBucket(u.rate, now)
		}
		u.m[k] = us
	}
	return us
}

// drop forgets an idle user; relay sockets still running keep their bucket.
func (u *users) drop(k userKey, us *user) {
	if us.live == 0 && len(us.pending) == 0 {
		delete(u.m, k)
	}
}
