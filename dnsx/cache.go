package dnsx

import (
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cache keeps answers for their TTL. Inbound mail asks the same few questions over
// and over (the SPF and DMARC records of a sender's domain, its DKIM key), and a
// round trip to the resolver per check cost more CPU than the rest of a delivery.
type cache struct {
	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
	max     int
	maxTTL  time.Duration
	now     func() time.Time
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	a       answer
	nx      bool // NXDOMAIN: the name does not exist
	expires time.Time
}

// negativeTTL bounds how long a "no such name" or "no such record" answer is kept
// when the response carries no SOA to say.
const negativeTTL = time.Minute

// WithCache returns a resolver that shares r's servers and keeps up to maxEntries
// answers, each for its TTL but at most maxTTL. Only data, "no data" and NXDOMAIN
// answers are kept: failures are asked again.
func (r *Resolver) WithCache(maxEntries int, maxTTL time.Duration) *Resolver {
	c := *r
	c.cache = &cache{entries: map[cacheKey]cacheEntry{}, max: maxEntries, maxTTL: maxTTL, now: time.Now}
	return &c
}

func (c *cache) get(name string, qtype uint16) (answer, error, bool) {
	if c == nil {
		return answer{}, nil, false
	}
	k := cacheKey{strings.ToLower(name), qtype}
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && !c.now().Before(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return answer{}, nil, false
	}
	if e.nx {
		return answer{}, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}, true
	}
	return e.a, nil, true
}

// put stores a successful or NXDOMAIN response for the smallest TTL it carries.
func (c *cache) put(name string, qtype uint16, resp *dns.Msg, a answer) {
	if c == nil {
		return
	}
	ttl := c.maxTTL
	if len(resp.Answer) > 0 {
		for _, rr := range resp.Answer {
			ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
		}
	} else {
		neg := negativeTTL
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				neg = time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
			}
		}
		ttl = min(ttl, neg)
	}
	if ttl <= 0 {
		return
	}
	k := cacheKey{strings.ToLower(name), qtype}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Dropping everything is crude but rare, bounded, and needs no bookkeeping.
		clear(c.entries)
	}
	c.entries[k] = cacheEntry{a: a, nx: resp.Rcode == dns.RcodeNameError, expires: c.now().Add(ttl)}
}
