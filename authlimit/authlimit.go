// Package authlimit slows down and then locks out clients that keep failing to log in.
// One Limiter is shared by every listener that checks passwords (SMTP submission, IMAP).
package authlimit

import (
	"net/netip"
	"sync"
	"time"

	"github.com/coibox/coibox/internal/netblock"
)

// MaxEntries bounds the memory a Limiter uses: about a hundred bytes per tracked address.
const MaxEntries = 100_000

// Limiter counts failed logins per client address within a window. After max failures
// the address is locked out until the window has passed since the failure that locked
// it. Each failure also earns a growing delay, which the caller sleeps before answering,
// so that guessing is slow even below the lockout threshold.
//
// IPv6 clients are counted per /64 (WithPrefixes changes it): a single host usually
// owns a whole /64, so counting single addresses would let it rotate through them.
type Limiter struct {
	max    int
	v4, v6 int // prefix lengths under which addresses count as one client
	window time.Duration
	step   time.Duration
	cap    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[netip.Addr]*entry
}

type entry struct {
	failures int
	start    time.Time // of the current window
	until    time.Time // locked out until then; zero: not locked out
}

// New returns a Limiter allowing max failures per window; max <= 0 disables the lockout
// (the delay still applies). The delay is 1s per failure, at most 5s.
func New(max int, window time.Duration) *Limiter {
	return &Limiter{
		max:     max,
		v4:      32,
		v6:      64,
		window:  window,
		step:    time.Second,
		cap:     5 * time.Second,
		now:     time.Now,
		entries: map[netip.Addr]*entry{},
	}
}

// WithDelay changes the delay per failure and its ceiling (tests use small ones), and
// returns l. Call it before the Limiter is shared.
func (l *Limiter) WithDelay(step, ceiling time.Duration) *Limiter {
	l.step, l.cap = step, ceiling
	return l
}

// WithPrefixes counts the addresses of one IPv4 /v4 or IPv6 /v6 as one client
// (limits.ipv4_prefix, limits.ipv6_prefix), and returns l. Call it before l is shared.
func (l *Limiter) WithPrefixes(v4, v6 int) *Limiter {
	if v4 > 0 && v4 <= 32 {
		l.v4 = v4
	}
	if v6 > 0 && v6 <= 128 {
		l.v6 = v6
	}
	return l
}

func (l *Limiter) key(ip netip.Addr) netip.Addr { return netblock.Client(ip, l.v4, l.v6) }

// Allow reports whether ip may try to log in (or connect at all) now.
func (l *Limiter) Allow(ip netip.Addr) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[l.key(ip)]
	return e == nil || !l.now().Before(e.until)
}

// Fail records a failed login from ip and returns how long the caller should wait
// before answering. Allow(ip) is false from the failure that reaches the limit on.
func (l *Limiter) Fail(ip netip.Addr) time.Duration {
	if l == nil {
		return 0
	}
	now := l.now()
	k := l.key(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[k]
	if e == nil {
		if len(l.entries) >= MaxEntries {
			l.evict(now)
		}
		e = &entry{start: now}
		l.entries[k] = e
	}
	if now.Sub(e.start) >= l.window && !now.Before(e.until) {
		*e = entry{start: now}
	}
	e.failures++
	if l.max > 0 && e.failures >= l.max {
		e.until = now.Add(l.window)
	}
	d := time.Duration(e.failures) * l.step
	if d > l.cap {
		d = l.cap
	}
	return d
}

// Succeed forgets ip's failures after a successful login. A lockout in force stays.
func (l *Limiter) Succeed(ip netip.Addr) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(ip)
	if e := l.entries[k]; e != nil && !l.now().Before(e.until) {
		delete(l.entries, k)
	}
}

// evict makes room: first it drops entries whose window and lockout are over; if every
// entry is still live (a flood from many addresses), it drops an arbitrary tenth, since
// forgetting some attackers is better than growing without bound.
func (l *Limiter) evict(now time.Time) {
	for k, e := range l.entries {
		if now.Sub(e.start) >= l.window && !now.Before(e.until) {
			delete(l.entries, k)
		}
	}
	if len(l.entries) < MaxEntries {
		return
	}
	n := MaxEntries / 10
	for k := range l.entries {
		if n == 0 {
			break
		}
		delete(l.entries, k)
		n--
	}
}

// Len is the number of addresses tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
