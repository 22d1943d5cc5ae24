package turn

import (
	"net"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	steps := []struct {
		at   time.Duration
		n    int
		want bool
	}{
		{0, minBurst, true},                     // starts full
		{0, 1, false},                           // then empty
		{100 * time.Millisecond, 1000, true},    // 0.1 s at 10 kB/s refills 1000
		{100 * time.Millisecond, 1, false},      //
		{50 * time.Millisecond, 1, false},       // time going backwards adds nothing
		{10 * time.Second, minBurst, true},      // refill is capped at the burst...
		{10 * time.Second, 1, false},            // ...not 100 kB
		{11 * time.Second, minBurst + 1, false}, // never more than the burst at once
	}
	b := newTokenBucket(10_000, start)
	for i, s := range steps {
		if got := b.allow(s.n, start.Add(s.at)); got != s.want {
			t.Fatalf("step %d: allow(%d) at +%v = %v, want %v", i, s.n, s.at, got, s.want)
		}
	}
	if big := newTokenBucket(1_000_000, start); !big.allow(1_000_000, start) {
		t.Fatal("burst of a fast bucket is not one second's worth")
	}
}

func TestUsers(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ip1 := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1000}
	ip1b := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 2000}
	ip2 := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 1000}
	u := newUsers(2, 5000)
	a := keyOf("1700000000", ip1)
	if keyOf("1700000000", ip1b) != a {
		t.Fatal("same user over TCP is another key")
	}
	v6a := keyOf("1", &net.UDPAddr{IP: net.ParseIP("2001:db8:1:2::a"), Port: 1})
	v6b := keyOf("1", &net.UDPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::b"), Port: 2})
	v6c := keyOf("1", &net.UDPAddr{IP: net.ParseIP("2001:db8:1:3::a"), Port: 1})
	if v6a != v6b || v6a == v6c {
		t.Fatal("IPv6 clients are not grouped by /64")
	}
	for i := range 2 {
		if !u.reserve(a, now) {
			t.Fatalf("reservation %d refused", i+1)
		}
	}
	if u.reserve(a, now) {
		t.Fatal("third reservation granted with two pending")
	}
	if !u.reserve(keyOf("1700000000", ip2), now) || !u.reserve(keyOf("1700003600", ip1), now) {
		t.Fatal("another address or username shares the limit")
	}
	b1 := u.created(a, now)
	b2 := u.created(a, now)
	if b1 == nil || b1 != b2 {
		t.Fatal("a user's allocations do not share one bandwidth budget")
	}
	if u.reserve(a, now) {
		t.Fatal("third reservation granted with two live")
	}
	u.deleted(a)
	if !u.reserve(a, now) {
		t.Fatal("reservation refused after a deletion")
	}
	// A reservation whose allocation never came frees its slot after a while.
	if u.reserve(a, now) {
		t.Fatal("reservation granted over the limit")
	}
	if !u.reserve(a, now.Add(pendingTimeout)) {
		t.Fatal("stale reservation still counted")
	}
	u.deleted(a)
	u.deleted(a)
	u.deleted(a) // more deletions than allocations must not go negative
	if len(u.m[a].pending) != 1 {
		t.Fatalf("pending %v, want the one fresh reservation", u.m[a].pending)
	}

	unlimited := newUsers(0, 0)
	k := keyOf("1", ip1)
	for range 100 {
		if !unlimited.reserve(k, now) {
			t.Fatal("limit 0 refused")
		}
		if unlimited.created(k, now) != nil {
			t.Fatal("rate 0 has a bucket")
		}
	}
}
