package onboard

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clients keeps one token bucket per client network, at most max of them. When full
// it drops the least recently used bucket: that one has been idle longest and so has
// refilled most, which makes forgetting it closest to what it would have allowed.
type clients struct {
	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	buckets map[netip.Prefix]*list.Element // of *bucket
	recent  list.List                      // front: most recently used
}

type bucket struct {
	key netip.Prefix
	lim *rate.Limiter
}

func newClients(limit rate.Limit, burst, size int) *clients {
	return &clients{limit: limit, burst: burst, max: size, buckets: make(map[netip.Prefix]*list.Element)}
}

// allow takes one token from key's bucket at time now.
func (c *clients) allow(key netip.Prefix, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.buckets[key]; ok {
		c.recent.MoveToFront(e)
		return e.Value.(*bucket).lim.AllowN(now, 1)
	}
	for c.recent.Len() >= c.max {
		oldest := c.recent.Back()
		c.recent.Remove(oldest)
		delete(c.buckets, oldest.Value.(*bucket).key)
	}
	b := &bucket{key: key, lim: rate.NewLimiter(c.limit, c.burst)}
	c.buckets[key] = c.recent.PushFront(b)
	return b.lim.AllowN(now, 1)
}

func (c *clients) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buckets)
}

// clientNetwork is the /24 (IPv4) or /64 (IPv6) of a request's remote address: one
// host usually holds a whole IPv6 /64, so limiting single IPv6 addresses limits
// nothing. An address that does not parse, which only a broken listener yields, shares
// the zero Prefix with every other such one.
func clientNetwork(remoteAddr string) netip.Prefix {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(remoteAddr); err == nil {
		addr = a
	} else {
		return netip.Prefix{}
	}
	addr = addr.Unmap().WithZone("")
	bits := 64
	if addr.Is4() {
		bits = 24
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}
