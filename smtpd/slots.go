package smtpd

import (
	"net/netip"
	"sync"
)

// Slots counts open connections, in all and per client address. Listeners that share
// one Slots share its limits, so limits.smtp_connections holds for the host, not for
// each of port 25, 587 and 465 separately.
type Slots struct {
	max, maxPerIP int
	mu            sync.Mutex
	total         int
	perIP         map[netip.Addr]int
}

// NewSlots allows max connections at once, at most maxPerIP of them from one address.
func NewSlots(max, maxPerIP int) *Slots {
	return &Slots{max: max, maxPerIP: maxPerIP, perIP: map[netip.Addr]int{}}
}

// acquire takes a slot for ip, or says which limit refuses it ("limit", "per_ip").
func (s *Slots) acquire(ip netip.Addr) (refused string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.total >= s.max:
		return "limit"
	case s.perIP[ip] >= s.maxPerIP:
		return "per_ip"
	}
	s.total++
	s.perIP[ip]++
	return ""
}

func (s *Slots) release(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}
