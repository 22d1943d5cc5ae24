package smtpd

import (
	"net/netip"
	"testing"
)

func TestSlotsShared(t *testing.T) {
	s := NewSlots(3, 2)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	held := map[int]*slot{}
	steps := []struct {
		ip      netip.Addr
		release int // index of the step whose slot to release; -1: acquire instead
		want    string
	}{
		{a, -1, ""},
		{a, -1, ""},
		{a, -1, "per_ip"}, // third from one address
		{b, -1, ""},
		{b, -1, "limit"}, // fourth in all, and every holder has spoken
		{a, 0, ""},
		{b, -1, ""}, // a freed slot is free for anyone
	}
	for i, st := range steps {
		if st.release >= 0 {
			s.release(held[st.release])
			continue
		}
		sl, got := s.acquire(st.ip, nil)
		if got != st.want {
			t.Errorf("step %d: acquire(%v) = %q, want %q", i, st.ip, got, st.want)
		}
		if sl != nil {
			s.settle(sl)
			held[i] = sl
		}
	}
	if len(s.perIP) != 2 || s.total != 3 {
		t.Errorf("counts: total %d, per IP %v", s.total, s.perIP)
	}
}

// TestSlotsEvictQuiet: when the slots are full, a newcomer takes the slot of the oldest
// connection that has not spoken; connections that have spoken are never taken back.
func TestSlotsEvictQuiet(t *testing.T) {
	s := NewSlots(3, 3)
	var evicted []string
	take := func(name, ip string) *slot {
		sl, refused := s.acquire(netip.MustParseAddr(ip), func() { evicted = append(evicted, name) })
		if refused != "" {
			t.Fatalf("%s refused: %s", name, refused)
		}
		return sl
	}
	talker := take("talker", "192.0.2.1")
	s.settle(talker)
	take("silent1", "192.0.2.2")
	take("silent2", "192.0.2.3")
	take("new1", "192.0.2.4") // full: silent1 is the oldest quiet one
	s.settle(take("new2", "192.0.2.5"))
	if want := []string{"silent1", "silent2"}; len(evicted) != 2 || evicted[0] != want[0] || evicted[1] != want[1] {
		t.Fatalf("evicted %v, want %v", evicted, want)
	}
	take("new3", "192.0.2.6") // new1 goes: talker and new2 have spoken
	if _, refused := s.acquire(netip.MustParseAddr("192.0.2.7"), nil); refused != "" {
		t.Fatalf("refused %q while new3 was quiet", refused)
	}
	// Now talker, new2 and the last newcomer remain; the last one is quiet still, but
	// once it speaks nothing can be taken back.
	for e := s.quiet.Front(); e != nil; e = e.Next() {
		s.settle(e.Value.(*slot))
	}
	if _, refused := s.acquire(netip.MustParseAddr("192.0.2.8"), nil); refused != "limit" {
		t.Fatalf("acquire with every holder settled: %q, want limit", refused)
	}
	if s.total != 3 {
		t.Errorf("total %d, want 3", s.total)
	}
	// A connection released after its eviction is not counted out twice.
	s.release(talker)
	s.release(talker)
	if s.total != 2 {
		t.Errorf("total %d after a double release, want 2", s.total)
	}
}

func TestSlotsPrefixes(t *testing.T) {
	tests := []struct {
		name   string
		v4, v6 int
		a, b   string
		shared bool
	}{
		{"ipv4 single by default", 32, 64, "192.0.2.1", "192.0.2.2", false},
		{"ipv4 /24", 24, 64, "192.0.2.1", "192.0.2.200", true},
		{"ipv4 /24, other network", 24, 64, "192.0.2.1", "192.0.3.1", false},
		{"ipv6 /64", 32, 64, "2001:db8::1", "2001:db8::ffff:1", true},
		{"ipv6 /64, other network", 32, 64, "2001:db8::1", "2001:db8:0:1::1", false},
		{"ipv6 /128", 32, 128, "2001:db8::1", "2001:db8::2", false},
		{"mapped ipv4", 24, 64, "::ffff:192.0.2.1", "192.0.2.9", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSlots(10, 1).WithPrefixes(tc.v4, tc.v6)
			if _, r := s.acquire(netip.MustParseAddr(tc.a), nil); r != "" {
				t.Fatalf("first: %q", r)
			}
			_, r := s.acquire(netip.MustParseAddr(tc.b), nil)
			if got := r == "per_ip"; got != tc.shared {
				t.Errorf("second from %s after %s: %q, want shared=%v", tc.b, tc.a, r, tc.shared)
			}
		})
	}
}
