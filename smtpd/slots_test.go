package smtpd

import (
	"net/netip"
	"testing"
)

func TestSlotsShared(t *testing.T) {
	s := NewSlots(3, 2)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	steps := []struct {
		ip      netip.Addr
		release bool
		want    string
	}{
		{a, false, ""},
		{a, false, ""},
		{a, false, "per_ip"}, // third from one address
		{b, false, ""},
		{b, false, "limit"}, // fourth in all
		{a, true, ""},
		{b, false, ""}, // a freed slot is free for anyone
	}
	for i, st := range steps {
		if st.release {
			s.release(st.ip)
			continue
		}
		if got := s.acquire(st.ip); got != st.want {
			t.Errorf("step %d: acquire(%v) = %q, want %q", i, st.ip, got, st.want)
		}
	}
	if len(s.perIP) != 2 || s.total != 3 {
		t.Errorf("counts: total %d, per IP %v", s.total, s.perIP)
	}
}
