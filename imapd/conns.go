package imapd

import (
	"container/list"
	"fmt"
	"net/netip"
	"sync"

	"github.com/coibox/coibox/internal/netblock"
)

// Conns counts IMAP connections, in all and per client, for one Server or for several
// that share it (ports 143 and 993 are one IMAP service to their clients, so
// limits.imap_connections and limits.imap_connections_per_ip hold over both).
//
// When every connection is taken, the oldest one that has not logged in yet is told
// BYE and its place given to the newcomer: a few addresses that open sockets and say
// nothing cannot keep clients out for the idle timeout, while a real client logs in
// within a round trip or two and is safe from then on.
type Conns struct {
	max, maxPerIP int
	v4, v6        int // prefix lengths under which addresses count as one client

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
	quiet list.List // *session not logged in yet, oldest first
}

// NewConns allows max connections at once, maxPerIP of them from one client, where the
// addresses of one IPv4 /v4 or IPv6 /v6 count as one client. Zero or negative values
// take DefaultLimits'.
func NewConns(max, maxPerIP, v4, v6 int) *Conns {
	d := DefaultLimits()
	pick := func(v, def, top int) int {
		if v <= 0 || v > top {
			return def
		}
		return v
	}
	return &Conns{
		max:      pick(max, d.MaxConns, int(^uint(0)>>1)),
		maxPerIP: pick(maxPerIP, d.MaxConnsPerIP, int(^uint(0)>>1)),
		v4:       pick(v4, d.IPv4Prefix, 32),
		v6:       pick(v6, d.IPv6Prefix, 128),
		perIP:    map[netip.Addr]int{},
	}
}

// Texts of the BYE refusing a connection.
const (
	byeFull      = "[UNAVAILABLE] Too many connections to this server; try again later"
	byeTooManyIP = "[UNAVAILABLE] Too many connections from your address (limit %d)"
)

// acquire counts sess in, or returns the text of the BYE refusing it. It may evict
// the oldest session not logged in yet, which says BYE at its next step.
func (c *Conns) acquire(sess *session) (refusal string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sess.key = netblock.Client(sess.ip, c.v4, c.v6)
	if c.perIP[sess.key] >= c.maxPerIP {
		return fmt.Sprintf(byeTooManyIP, c.maxPerIP)
	}
	if c.total >= c.max {
		e := c.quiet.Front()
		if e == nil {
			return byeFull
		}
		victim := e.Value.(*session)
		c.releaseLocked(victim)
		victim.log.Info("imap: connection evicted", "reason", "not logged in while the connection slots are full")
		victim.interruptWith(byeFull)
	}
	c.total++
	c.perIP[sess.key]++
	sess.counted = true
	sess.quiet = c.quiet.PushBack(sess)
	return ""
}

// settle marks sess as logged in: it no longer gives way to newcomers. It reports
// false if sess was evicted already.
func (c *Conns) settle(sess *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !sess.counted {
		return false
	}
	if sess.quiet != nil {
		c.quiet.Remove(sess.quiet)
		sess.quiet = nil
	}
	return true
}

// release counts sess out; a second release (after an eviction) does nothing.
func (c *Conns) release(sess *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(sess)
}

func (c *Conns) releaseLocked(sess *session) {
	if !sess.counted {
		return
	}
	sess.counted = false
	if sess.quiet != nil {
		c.quiet.Remove(sess.quiet)
		sess.quiet = nil
	}
	c.total--
	if c.perIP[sess.key]--; c.perIP[sess.key] <= 0 {
		delete(c.perIP, sess.key)
	}
}
