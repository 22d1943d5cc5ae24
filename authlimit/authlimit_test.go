package authlimit

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newTest(max int, window time.Duration) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(max, window)
	l.now = c.now
	return l, c
}

func TestLimiter(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	type step struct {
		op      string // fail, ok, wait
		ip      netip.Addr
		wait    time.Duration
		delay   time.Duration // expected from fail
		allowed bool          // expected Allow(ip) afterwards
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"delay grows and is capped", []step{
			{op: "fail", ip: a, delay: 1 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 2 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 3 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 4 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 5 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 5 * time.Second, allowed: true},
		}},
		{"lockout at the limit, per address", []step{
			{op: "fail", ip: a, delay: time.Second, allowed: true},
			{op: "fail", ip: a, delay: 2 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 3 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 4 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 5 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 5 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 5 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 5 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 5 * time.Second, allowed: true},
			{op: "fail", ip: a, delay: 5 * time.Second, allowed: false},
			{op: "wait", ip: b, allowed: true},
			{op: "ok", ip: a, allowed: false}, // success does not lift a lockout
			{op: "wait", ip: a, wait: 14 * time.Minute, allowed: false},
			{op: "wait", ip: a, wait: time.Minute, allowed: true},
			{op: "fail", ip: a, delay: time.Second, allowed: true}, // a fresh window
		}},
		{"failures outside the window are forgotten", []step{
			{op: "fail", ip: a, delay: time.Second, allowed: true},
			{op: "wait", ip: a, wait: 16 * time.Minute, allowed: true},
			{op: "fail", ip: a, delay: time.Second, allowed: true},
		}},
		{"success resets the count", []step{
			{op: "fail", ip: a, delay: time.Second, allowed: true},
			{op: "fail", ip: a, delay: 2 * time.Second, allowed: true},
			{op: "ok", ip: a, allowed: true},
			{op: "fail", ip: a, delay: time.Second, allowed: true},
		}},
		{"IPv6 counts per /64", []step{
			{op: "fail", ip: netip.MustParseAddr("2001:db8::1"), delay: time.Second, allowed: true},
			{op: "fail", ip: netip.MustParseAddr("2001:db8::2"), delay: 2 * time.Second, allowed: true},
			{op: "fail", ip: netip.MustParseAddr("2001:db8:0:1::1"), delay: time.Second, allowed: true},
		}},
		{"IPv4-mapped IPv6 is the IPv4 address", []step{
			{op: "fail", ip: a, delay: time.Second, allowed: true},
			{op: "fail", ip: netip.MustParseAddr("::ffff:192.0.2.1"), delay: 2 * time.Second, allowed: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, c := newTest(10, 15*time.Minute)
			for i, s := range tc.steps {
				switch s.op {
				case "fail":
					if d := l.Fail(s.ip); d != s.delay {
						t.Fatalf("step %d: Fail(%s) delay %v, want %v", i, s.ip, d, s.delay)
					}
				case "ok":
					l.Succeed(s.ip)
				case "wait":
					c.advance(s.wait)
				}
				if got := l.Allow(s.ip); got != s.allowed {
					t.Fatalf("step %d (%s): Allow(%s) = %v, want %v", i, s.op, s.ip, got, s.allowed)
				}
			}
		})
	}
}

func TestNilLimiterAllows(t *testing.T) {
	var l *Limiter
	ip := netip.MustParseAddr("192.0.2.1")
	if !l.Allow(ip) || l.Fail(ip) != 0 {
		t.Fatal("nil limiter limits")
	}
	l.Succeed(ip)
}

func TestBoundedMemory(t *testing.T) {
	l, c := newTest(3, time.Minute)
	for i := range MaxEntries + 5000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Fail(ip)
		if i == MaxEntries/2 {
			c.advance(2 * time.Minute) // the first half expires
		}
	}
	if n := l.Len(); n > MaxEntries {
		t.Fatalf("%d entries tracked, limit %d", n, MaxEntries)
	}
}

func TestConcurrent(t *testing.T) {
	l := New(800, time.Minute).WithDelay(0, 0)
	ip := netip.MustParseAddr("192.0.2.9")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				l.Fail(ip)
				l.Allow(ip)
			}
		})
	}
	wg.Wait()
	// Every one of the 800 failures counted: the limit of 800 is reached exactly.
	if l.Allow(ip) {
		t.Fatal("800 concurrent failures did not reach a limit of 800")
	}
}

// TestPrefixes: with WithPrefixes, the addresses of one block share one count.
func TestPrefixes(t *testing.T) {
	l := New(2, time.Hour).WithDelay(0, 0).WithPrefixes(24, 48)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.200")
	l.Fail(a)
	l.Fail(b)
	if l.Allow(netip.MustParseAddr("192.0.2.77")) {
		t.Error("a third address of the /24 allowed after two failures in it")
	}
	if !l.Allow(netip.MustParseAddr("192.0.3.1")) {
		t.Error("the next /24 locked out too")
	}
	l.Fail(netip.MustParseAddr("2001:db8:1:2::1"))
	l.Fail(netip.MustParseAddr("2001:db8:1:3::1"))
	if l.Allow(netip.MustParseAddr("2001:db8:1:4::1")) {
		t.Error("the /48 not counted as one client")
	}
}
