package smtpd

import (
	"container/list"
	"net/netip"
	"sync"

	"github.com/coibox/coibox/internal/netblock"
)

// Slots counts open connections, in all and per client address. Listeners that share
// one Slots share its limits, so limits.smtp_connections holds for the host, not for
// each of port 25, 587 and 465 separately.
//
// A connection that has not said anything useful yet (no EHLO, or on 465 no finished
// TLS handshake) holds its slot only until the slots run out: then the oldest such
// connection gives its slot to the newcomer. Otherwise a few addresses opening sockets
// and saying nothing would close every SMTP port to everyone for the command timeout,
// while a real client says EHLO within a round trip of the greeting and is safe.
type Slots struct {
	max, maxPerIP int
	v4, v6        int // prefix lengths under which addresses count as one client

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
	quiet list.List // *slot of connections not yet settled, oldest first
}

// slot is one connection's share of a Slots.
type slot struct {
	key      netip.Addr
	elem     *list.Element // in Slots.quiet until the connection settles
	evict    func()        // ends the connection when its slot is taken back
	released bool
}

// NewSlots allows max connections at once, at most maxPerIP of them from one client;
// IPv4 addresses count singly and IPv6 ones per /64 (see WithPrefixes).
func NewSlots(max, maxPerIP int) *Slots {
	return &Slots{max: max, maxPerIP: maxPerIP, v4: 32, v6: 64, perIP: map[netip.Addr]int{}}
}

// WithPrefixes makes addresses within one IPv4 /v4 or IPv6 /v6 count as one client
// for the per-IP limit, and returns s. Call it before s is shared.
func (s *Slots) WithPrefixes(v4, v6 int) *Slots {
	if v4 > 0 && v4 <= 32 {
		s.v4 = v4
	}
	if v6 > 0 && v6 <= 128 {
		s.v6 = v6
	}
	return s
}

// acquire takes a slot for ip, or says which limit refuses it ("limit", "per_ip").
// When every slot is taken, it takes back the slot of the oldest unsettled connection
// and calls that connection's evict (outside the lock); evict is this connection's
// own, kept for the same purpose.
func (s *Slots) acquire(ip netip.Addr, evict func()) (sl *slot, refused string) {
	key := netblock.Client(ip, s.v4, s.v6)
	s.mu.Lock()
	if s.perIP[key] >= s.maxPerIP {
		s.mu.Unlock()
		return nil, "per_ip"
	}
	var victim *slot
	if s.total >= s.max {
		e := s.quiet.Front()
		if e == nil {
			s.mu.Unlock()
			return nil, "limit"
		}
		victim = e.Value.(*slot)
		s.releaseLocked(victim)
	}
	sl = &slot{key: key, evict: evict}
	sl.elem = s.quiet.PushBack(sl)
	s.total++
	s.perIP[key]++
	s.mu.Unlock()
	if victim != nil && victim.evict != nil {
		victim.evict()
	}
	return sl, ""
}

// settle marks the connection as one that has spoken: its slot is no longer taken
// back for newcomers.
func (s *Slots) settle(sl *slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl.elem != nil {
		s.quiet.Remove(sl.elem)
		sl.elem = nil
	}
}

// release gives the slot back; releasing it twice (after an eviction) is harmless.
func (s *Slots) release(sl *slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(sl)
}

func (s *Slots) releaseLocked(sl *slot) {
	if sl.released {
		return
	}
	sl.released = true
	if sl.elem != nil {
		s.quiet.Remove(sl.elem)
		sl.elem = nil
	}
	s.total--
	if s.perIP[sl.key]--; s.perIP[sl.key] <= 0 {
		delete(s.perIP, sl.key)
	}
}
