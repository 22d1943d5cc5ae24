package coi

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coibox/coibox/coi/onboard"
	"github.com/coibox/coibox/coi/profile"
	"github.com/coibox/coibox/internal/netblock"
	"github.com/coibox/coibox/store"
)

// tombstoneKeep is how long a deleted address cannot be claimed by a first login, so
// an expired chatmail address never passes to someone else (chatmail §3, a coibox
// addition).
const tombstoneKeep = 365 * 24 * time.Hour

// Authenticate checks a login and, for an unknown address on a chatmail domain with
// open registration, makes the account (chatmail §3). Every failure, a refused new
// account included, is store.ErrAuthFailed, so a client cannot tell which rule it
// broke. ip is the client's address, for the per-network creation limit.
func (c *Chat) Authenticate(ctx context.Context, ip netip.Addr, user, pass string) (*store.Account, error) {
	user = store.Normalize(user)
	// Existence first: where registration is open an unknown name is no secret (it is
	// about to be made), and asking first saves a wasted argon2 run on every first
	// login. Elsewhere store.Authenticate spends that run itself, so that unknown and
	// wrong look alike.
	if _, err := c.st.Account(ctx, user); err == nil {
		return c.st.Authenticate(ctx, user, pass)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	p, ok, err := c.addressProfile(ctx, user)
	if err != nil || !ok || !p.Chatmail || p.Registration != profile.Open {
		return c.st.Authenticate(ctx, user, pass)
	}
	if err := onboard.CheckNewAccount(user, pass, onboard.Rules{LocalpartLen: onboard.Range(p.LocalpartLen), PasswordMin: p.PasswordMin}); err != nil {
		c.log.Info("chat: first login refused", "why", err)
		return nil, store.ErrAuthFailed
	}
	// Concurrent first logins of one address (Delta Chat opens IMAP and SMTP at once;
	// the relay's tests log in ten times in parallel) make it once: the others wait
	// for that attempt and then log in like any later login. Only the attempt that
	// creates counts against the network's limit.
	v, err, shared := c.firsts.Do(user, func() (any, error) { return c.create(ctx, ip, user, pass, p) })
	if shared {
		return c.st.Authenticate(ctx, user, pass)
	}
	if err != nil {
		return nil, err
	}
	return v.(*store.Account), nil
}

// create makes the account of a first login that passed the name rules.
func (c *Chat) create(ctx context.Context, ip netip.Addr, user, pass string, p profile.Profile) (*store.Account, error) {
	if why := c.resourceProblem(p.ResourceGuard); why != "" {
		c.log.Warn("chat: first login refused by the resource guard", "user", clip(user), "why", why)
		return nil, store.ErrAuthFailed
	}
	if !c.creation.allow(ip, c.opts.Now()) {
		c.log.Warn("chat: first login refused: too many new accounts from this network", "user", clip(user), "ip", ip.String())
		return nil, store.ErrAuthFailed
	}
	n := NewAccount(p, user, pass)
	n.TombstonesSince = c.opts.Now().Add(-tombstoneKeep)
	acc, err := c.st.CreateAccount(ctx, n)
	switch {
	case errors.Is(err, store.ErrExists):
		// A concurrent first login made it (or an alias holds the name): nothing was
		// created here, and the password is checked against what is there now.
		c.creation.refund(ip)
		return c.st.Authenticate(ctx, user, pass)
	case errors.Is(err, store.ErrTombstoned):
		c.log.Info("chat: first login refused: address recently deleted", "user", clip(user))
		return nil, store.ErrAuthFailed
	case err != nil:
		return nil, fmt.Errorf("create account on first login: %w", err)
	}
	c.log.Info("chat: account created on first login", "account", acc.Address)
	return acc, nil
}

// NewAccount is what a new account on a domain with profile p starts with, whoever
// makes it (a first login, the admin): its incoming-encryption flag (§6.3) and the
// domain's mailbox size as its quota (§10).
func NewAccount(p profile.Profile, address, password string) store.NewAccount {
	return store.NewAccount{
		Address:             address,
		Password:            password,
		EnforceE2EEIncoming: p.EnforceE2EEIncoming,
		QuotaBytes:          int64(p.MaxMailboxSize),
	}
}

// resourceProblem says why the machine is too strained to take new accounts, "" if
// it is not (or cannot tell).
func (c *Chat) resourceProblem(g profile.ResourceGuard) string {
	if g.MaxLoad1 > 0 {
		if b, err := os.ReadFile("/proc/loadavg"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				if load, err := strconv.ParseFloat(f[0], 64); err == nil && load > g.MaxLoad1 {
					return fmt.Sprintf("load average %.2f over %.2f", load, g.MaxLoad1)
				}
			}
		}
	}
	if g.MinFreeRAM > 0 {
		if avail, ok := memAvailable(); ok && avail < int64(g.MinFreeRAM) {
			return fmt.Sprintf("%d MiB of memory available, under %d", avail>>20, int64(g.MinFreeRAM)>>20)
		}
	}
	if g.MinFreeDisk > 0 && c.opts.DataDir != "" {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(c.opts.DataDir, &fs); err == nil {
			if free := int64(fs.Bavail) * int64(fs.Bsize); free < int64(g.MinFreeDisk) {
				return fmt.Sprintf("%d MiB of disk free, under %d", free>>20, int64(g.MinFreeDisk)>>20)
			}
		}
	}
	return ""
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10, true
				}
			}
		}
	}
	return 0, false
}

// netLimiter counts events per client network (/24 or /64) in fixed windows,
// bounded in memory: networks whose window ended are forgotten.
type netLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	counts map[netip.Addr]*netCount
}

type netCount struct {
	n     int
	start time.Time
}

func newNetLimiter(max int, window time.Duration) *netLimiter {
	return &netLimiter{max: max, window: window, counts: map[netip.Addr]*netCount{}}
}

// network is the block one client is counted in: /24 for IPv4, /64 for IPv6.
func network(ip netip.Addr) netip.Addr { return netblock.Client(ip, 24, 64) }

// allow counts one event for ip's network and reports whether it is within the limit.
func (l *netLimiter) allow(ip netip.Addr, now time.Time) bool {
	if !ip.IsValid() {
		return true // no address (tests, local tools)
	}
	k := network(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.counts) > 10000 {
		for p, c := range l.counts {
			if now.Sub(c.start) >= l.window {
				delete(l.counts, p)
			}
		}
	}
	c := l.counts[k]
	if c == nil || now.Sub(c.start) >= l.window {
		c = &netCount{start: now}
		l.counts[k] = c
	}
	if c.n >= l.max {
		return false
	}
	c.n++
	return true
}

// refund gives back a unit allow counted for an event that did not happen.
func (l *netLimiter) refund(ip netip.Addr) {
	if !ip.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.counts[network(ip)]; c != nil && c.n > 0 {
		c.n--
	}
}

// clip shortens a client-supplied string for logs.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
