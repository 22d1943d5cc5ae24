package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coibox/coibox/store"
)

// Resolver is the part of dnsx.Resolver policy discovery uses.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
}

// Store persists policies across restarts; *store.Store satisfies it. Policies are kept
// as server METADATA entries so that no schema change is needed.
type Store interface {
	Metadata(ctx context.Context, accountID, mailboxID int64, names []string, descendants bool) ([]store.MetaEntry, error)
	SetMetadata(ctx context.Context, accountID, mailboxID int64, entries []store.MetaEntry, maxEntries int) error
}

// MetadataPrefix is the server METADATA name under which a domain's policy is stored.
const MetadataPrefix = "/private/vendor/coibox/mta-sts/"

const (
	// fetchTimeout bounds a whole policy fetch (RFC 8461 3.3 suggests a minute at most).
	fetchTimeout = 10 * time.Second
	// recheck is how long a TXT answer is trusted before asking DNS again, so that a
	// burst of messages to one domain costs one lookup rather than one per message.
	recheck = time.Minute
	// maxNone is how many policy-less domains are remembered before stale ones are swept.
	maxNone = 10000
)

// Options configure a Client.
type Options struct {
	Resolver Resolver
	// Store, if set, keeps policies across restarts.
	Store Store
	// RootCAs verify the policy host's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Dial connects to an address; nil means a net.Dialer. Tests redirect ports with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Client finds the policy of recipient domains. It is safe for concurrent use.
type Client struct {
	opts Options
	http *http.Client
	log  *slog.Logger

	mu     sync.Mutex
	cache  map[string]*cached
	none   map[string]time.Time // domains found without a policy, and when
	flight map[string]*call
}

// cached is what is known of one domain: its last valid policy, if any, and when
// the TXT record was last checked.
type cached struct {
	ID      string    `json:"id"`
	Policy  string    `json:"policy"` // wire format
	Fetched time.Time `json:"fetched"`
	Expires time.Time `json:"expires"`

	policy  *Policy
	checked time.Time
}

type call struct {
	done chan struct{}
	p    *Policy
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{opts: opts, log: opts.Logger, cache: map[string]*cached{}, none: map[string]time.Time{}, flight: map[string]*call{}}
	dial := opts.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	tr := &http.Transport{
		Proxy: nil, // the policy must come from the domain's host itself
		// Resolve through the configured resolver like every other lookup, instead of
		// the system's, so that a policy host is found where the MX hosts are.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ips, err := opts.Resolver.LookupIP(ctx, host)
			if err != nil {
				return nil, err
			}
			if len(ips) == 0 {
				return nil, fmt.Errorf("%s has no address", host)
			}
			var errs []error
			for _, ip := range ips {
				conn, err := dial(ctx, network, net.JoinHostPort(ip.String(), port))
				if err == nil {
					return conn, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
		TLSClientConfig:        &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    fetchTimeout,
		ResponseHeaderTimeout:  fetchTimeout,
		DisableKeepAlives:      true, // one fetch per domain per max_age: nothing to reuse
		MaxResponseHeaderBytes: 16 << 10,
	}
	c.http = &http.Client{
		Transport: tr,
		Timeout:   fetchTimeout,
		// RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// Get returns the policy to apply to mail for domain, or nil when there is none (no
// record, an unfetchable policy with nothing cached, or mode none). It never fails:
// RFC 8461 5 says a sender that cannot find a policy delivers as if there were none.
// Concurrent calls for one domain share one lookup.
func (c *Client) Get(ctx context.Context, domain string) *Policy {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	c.mu.Lock()
	if cl, ok := c.flight[domain]; ok {
		c.mu.Unlock()
		select {
		case <-cl.done:
			return cl.p
		case <-ctx.Done():
			return c.current(domain)
		}
	}
	now := c.opts.Now()
	if e := c.cache[domain]; e != nil && now.Sub(e.checked) < recheck && now.Before(e.Expires) {
		p := e.policy
		c.mu.Unlock()
		return effective(p)
	}
	if t, ok := c.none[domain]; ok && now.Sub(t) < recheck && now.Sub(t) >= 0 {
		c.mu.Unlock()
		return nil
	}
	cl := &call{done: make(chan struct{})}
	c.flight[domain] = cl
	c.mu.Unlock()

	cl.p = effective(c.lookup(ctx, domain))

	c.mu.Lock()
	if cl.p == nil {
		if len(c.none) > maxNone {
			for d, t := range c.none {
				if now.Sub(t) >= recheck {
					delete(c.none, d)
				}
			}
		}
		c.none[domain] = now
	} else {
		delete(c.none, domain)
	}
	delete(c.flight, domain)
	c.mu.Unlock()
	close(cl.done)
	return cl.p
}

// effective turns a "none" policy into no policy.
func effective(p *Policy) *Policy {
	if p == nil || p.Mode == None {
		return nil
	}
	return p
}

// current is the unexpired cached policy, without any lookup.
func (c *Client) current(domain string) *Policy {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.cache[domain]; e != nil && c.opts.Now().Before(e.Expires) {
		return effective(e.policy)
	}
	return nil
}

// lookup implements RFC 8461 5.1: check the TXT record, refetch when its id changed
// or the cached policy expired, and fall back to an unexpired cached policy when the
// record or the policy cannot be had.
func (c *Client) lookup(ctx context.Context, domain string) *Policy {
	now := c.opts.Now()
	e := c.load(ctx, domain)
	valid := e != nil && now.Before(e.Expires)

	id, err := c.record(ctx, domain)
	if err != nil {
		c.log.Debug("mta-sts: no usable record", "domain", domain, "err", err)
		if valid {
			c.touch(domain, e, now)
			return e.policy
		}
		return nil
	}
	if valid && e.ID == id {
		c.touch(domain, e, now)
		return e.policy
	}
	p, err := c.Fetch(ctx, domain)
	if err != nil {
		c.log.Warn("mta-sts: fetch policy failed", "domain", domain, "err", err)
		if valid {
			c.touch(domain, e, now)
			return e.policy
		}
		return nil
	}
	ne := &cached{ID: id, Policy: p.String(), Fetched: now, Expires: now.Add(p.MaxAge), policy: p, checked: now}
	c.mu.Lock()
	c.cache[domain] = ne
	c.mu.Unlock()
	c.save(ctx, domain, ne)
	c.log.Info("mta-sts: policy updated", "domain", domain, "id", id, "mode", p.Mode, "max_age", p.MaxAge)
	return p
}

func (c *Client) touch(domain string, e *cached, now time.Time) {
	c.mu.Lock()
	e.checked = now
	c.cache[domain] = e
	c.mu.Unlock()
}

// record returns the id of the domain's one valid "v=STSv1" TXT record.
func (c *Client) record(ctx context.Context, domain string) (string, error) {
	txts, err := c.opts.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		return "", err
	}
	var recs []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=STSv1;") || t == "v=STSv1" {
			recs = append(recs, t)
		}
	}
	// RFC 8461 3.1: anything but exactly one record means no policy.
	if len(recs) != 1 {
		return "", fmt.Errorf("%d v=STSv1 records at _mta-sts.%s", len(recs), domain)
	}
	return ParseRecord(recs[0])
}

// Fetch downloads and parses the policy at https://mta-sts.<domain>/.well-known/mta-sts.txt.
func (c *Client) Fetch(ctx context.Context, domain string) (*Policy, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: HTTP status %s", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("fetch %s: media type %q, want text/plain", url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	p, err := Parse(body)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	return p, nil
}

// load returns the cached entry, reading it from the store after a restart.
func (c *Client) load(ctx context.Context, domain string) *cached {
	c.mu.Lock()
	e := c.cache[domain]
	c.mu.Unlock()
	if e != nil || c.opts.Store == nil {
		return e
	}
	ents, err := c.opts.Store.Metadata(ctx, store.Server, 0, []string{MetadataPrefix + domain}, false)
	if err != nil {
		c.log.Warn("mta-sts: read stored policy", "domain", domain, "err", err)
		return nil
	}
	if len(ents) == 0 {
		return nil
	}
	e = new(cached)
	if err := json.Unmarshal(ents[0].Value, e); err != nil {
		c.log.Warn("mta-sts: stored policy unreadable", "domain", domain, "err", err)
		return nil
	}
	if e.policy, err = Parse([]byte(e.Policy)); err != nil {
		c.log.Warn("mta-sts: stored policy invalid", "domain", domain, "err", err)
		return nil
	}
	c.mu.Lock()
	c.cache[domain] = e
	c.mu.Unlock()
	return e
}

func (c *Client) save(ctx context.Context, domain string, e *cached) {
	if c.opts.Store == nil {
		return
	}
	v, err := json.Marshal(e)
	if err == nil {
		err = c.opts.Store.SetMetadata(ctx, store.Server, 0, []store.MetaEntry{{Name: MetadataPrefix + domain, Value: v}}, 0)
	}
	if err != nil {
		c.log.Warn("mta-sts: persist policy", "domain", domain, "err", err)
	}
}
