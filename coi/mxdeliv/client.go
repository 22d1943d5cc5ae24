package mxdeliv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coibox/coibox/internal/peertls"
)

// Cache lifetimes of §11.2.
const (
	// SMTPTTL is how long a host whose /mxdeliv failed but whose SMTP took the
	// message is left to SMTP.
	SMTPTTL = 30 * time.Minute
	// NoServiceTTL is how long a host that refuses TCP on the HTTPS port or answers
	// 404/405 is left to SMTP: it has no /mxdeliv at all, and ordinary MX hosts
	// must not cost an HTTPS attempt per message.
	NoServiceTTL = 24 * time.Hour
)

// Defaults of Options.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultRequestTimeout = 60 * time.Second
	DefaultPort           = 443
	DefaultCacheSize      = 10000
)

// maxReplyBytes bounds what is read of a refusal's body, for the log.
const maxReplyBytes = 512

// Resolver looks up a host's addresses; *dnsx.Resolver satisfies it.
type Resolver interface {
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
}

// ClientOptions configure NewClient. Zero values take the defaults.
type ClientOptions struct {
	// HTTPClient sends the requests. nil: one with verified TLS (RootCAs),
	// ConnectTimeout for TCP and the TLS handshake, HTTP/2, no proxy. A client
	// given here keeps its own transport (ConnectTimeout, RootCAs and Resolver do
	// not apply to it), but redirects are never followed either way.
	HTTPClient *http.Client
	// RootCAs verify the peers' certificates (default client only); nil: the
	// system roots.
	RootCAs *x509.CertPool
	// Resolver, if set, resolves MX host names for the default client, so that
	// HTTPS asks the same DNS as SMTP; nil: the system resolver.
	Resolver Resolver
	// ConnectTimeout bounds connecting (TCP, then TLS) in the default client;
	// default 5 s (§11.2's deviation: a host without /mxdeliv must cost little).
	ConnectTimeout time.Duration
	// RequestTimeout bounds one request from start to the end of the answer;
	// default 60 s.
	RequestTimeout time.Duration
	// Port is the HTTPS port of MX hosts; default 443. Tests use another.
	Port int
	// CacheSize bounds the no-mxdeliv cache; default DefaultCacheSize hosts.
	CacheSize int
	// Now is the clock of the cache; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Client delivers over HTTPS /mxdeliv and keeps the no-mxdeliv cache. It is safe
// for concurrent use.
type Client struct {
	http *http.Client
	opts ClientOptions
	log  *slog.Logger

	mu    sync.Mutex
	until map[string]time.Time // host → end of its no-mxdeliv period
}

// NewClient returns a client.
func NewClient(o ClientOptions) *Client {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Port <= 0 {
		o.Port = DefaultPort
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var hc http.Client
	if o.HTTPClient != nil {
		hc = *o.HTTPClient
	} else {
		hc.Transport = newTransport(o)
	}
	// A redirect could lead to plain http:// or to a host that is not the MX.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{http: &hc, opts: o, log: o.Logger, until: map[string]time.Time{}}
}

func newTransport(o ClientOptions) *http.Transport {
	d := &net.Dialer{Timeout: o.ConnectTimeout}
	dial := d.DialContext
	if o.Resolver != nil {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialResolved(ctx, d, o.Resolver, network, addr)
		}
	}
	return &http.Transport{
		Proxy:       nil, // MX hosts are reached directly, like SMTP
		DialContext: dial,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Verified below instead, so that "_" test hosts get the relaxed check
			// SMTP gives them (package peertls); a failure ends the handshake before
			// anything is sent.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				return peertls.Verify(cs, cs.ServerName, "", o.RootCAs)
			},
		},
		TLSHandshakeTimeout: o.ConnectTimeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
}

// dialResolved connects to addr's host through r, trying its addresses in order.
// The errors of all attempts are joined, so that a host refusing on every address
// it was tried at is recognisable (errors.Is syscall.ECONNREFUSED).
func dialResolved(ctx context.Context, d *net.Dialer, r Resolver, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("split address %s: %w", addr, err)
	}
	if net.ParseIP(host) != nil {
		return d.DialContext(ctx, network, addr)
	}
	ips, err := r.LookupIP(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("look up %s: no address", host)
	}
	var errs []error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("connect to %s: %w", host, errors.Join(errs...))
}

// StatusError is an answer other than 2xx from a host's /mxdeliv.
type StatusError struct {
	Host   string
	Status int    // the HTTP status
	Reply  string // the first line of the body, normally an SMTP reply
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s/mxdeliv answered %d %q", e.Host, e.Status, e.Reply)
}

// Deliver POSTs msg, signed as it will be stored, to https://<mxHost>/mxdeliv for
// the recipients, and reports whether the host took it (any 2xx). The error says
// why not; the caller then falls back to SMTP on the same host. Deliver does not
// consult the cache: ask Skip first. Hosts that refuse TCP or answer 404/405 are
// cached as without /mxdeliv for NoServiceTTL.
func (c *Client) Deliver(ctx context.Context, mxHost, sender string, rcpts []string, msg []byte) (delivered bool, err error) {
	host := cacheKey(mxHost)
	if err := checkRequest(host, sender, rcpts); err != nil {
		return false, err
	}
	u := c.url(host)
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(msg))
	if err != nil {
		return false, fmt.Errorf("make request to %s: %w", u, err)
	}
	// Set by map key, not Header.Set: the spec's spelling goes out as written.
	req.Header["Content-Type"] = []string{"message/rfc822"}
	if sender != "" {
		req.Header[HeaderFrom] = []string{sender}
	}
	req.Header[HeaderTo] = rcpts
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			c.remember(host, NoServiceTTL, "refuses TCP")
		}
		return false, fmt.Errorf("post message: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 == 2 {
		return true, nil
	}
	line, _, _ := bufio.NewReader(io.LimitReader(resp.Body, maxReplyBytes)).ReadLine()
	// Drain a little, so that the connection can serve the next request.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		c.remember(host, NoServiceTTL, "answers "+strconv.Itoa(resp.StatusCode))
	}
	return false, &StatusError{Host: host, Status: resp.StatusCode, Reply: strings.ToValidUTF8(string(line), "?")}
}

// checkRequest refuses what cannot go into the request as the spec frames it: a
// host that is not a bare name or IP, or an address whose characters would change
// meaning in a header (line breaks) or in the receiver's comma split.
func checkRequest(host, sender string, rcpts []string) error {
	if host == "" || strings.ContainsAny(host, "/@?#[] \t\r\n\x00") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
		return fmt.Errorf("check MX host %q: not a host name", host)
	}
	if len(rcpts) == 0 {
		return errors.New("check recipients: none")
	}
	for _, a := range append([]string{sender}, rcpts...) {
		if strings.ContainsAny(a, "\r\n\x00,<>") {
			return fmt.Errorf("check address %q: not sendable in a header", a)
		}
	}
	for _, a := range rcpts {
		if a == "" {
			return errors.New("check recipients: empty address")
		}
	}
	return nil
}

func (c *Client) url(host string) string {
	hp := host
	if c.opts.Port != DefaultPort || strings.Contains(host, ":") {
		hp = net.JoinHostPort(host, strconv.Itoa(c.opts.Port))
	}
	u := url.URL{Scheme: "https", Host: hp, Path: "/mxdeliv"}
	return u.String()
}

// Skip reports whether host is in the no-mxdeliv cache: deliver to it by SMTP
// without trying HTTPS.
func (c *Client) Skip(host string) bool {
	k := cacheKey(host)
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.until[k]
	if !ok {
		return false
	}
	if !c.opts.Now().Before(until) {
		delete(c.until, k)
		return false
	}
	return true
}

// MarkSMTP records that SMTP took a message host's /mxdeliv did not: the host is
// skipped for SMTPTTL.
func (c *Client) MarkSMTP(host string) { c.remember(cacheKey(host), SMTPTTL, "SMTP fallback worked") }

// Forget removes host from the cache, after an SMTP connection or TLS error: what
// was learnt about it may no longer hold.
func (c *Client) Forget(host string) {
	k := cacheKey(host)
	c.mu.Lock()
	delete(c.until, k)
	c.mu.Unlock()
}

// remember puts host in the cache for ttl, never shortening a longer entry.
func (c *Client) remember(host string, ttl time.Duration, why string) {
	now := c.opts.Now()
	until := now.Add(ttl)
	c.mu.Lock()
	old, ok := c.until[host]
	switch {
	case ok && !old.Before(until):
		c.mu.Unlock()
		return
	case !ok && len(c.until) >= c.opts.CacheSize:
		c.evict(now)
	}
	c.until[host] = until
	c.mu.Unlock()
	c.log.Info("mxdeliv: host left to SMTP", "mx", host, "for", ttl, "reason", why)
}

// evict makes room for one entry: it drops the expired entries, or if there are
// none the one that would expire first, the least valuable to keep. Called with
// c.mu held, only when the cache is full, which takes CacheSize distinct hosts.
func (c *Client) evict(now time.Time) {
	var first string
	var firstUntil time.Time
	for h, u := range c.until {
		if !now.Before(u) {
			delete(c.until, h)
			continue
		}
		if first == "" || u.Before(firstUntil) {
			first, firstUntil = h, u
		}
	}
	if len(c.until) >= c.opts.CacheSize {
		delete(c.until, first)
	}
}

// cacheKey is the form hosts are compared in: DNS names are case-insensitive and
// may carry the root's trailing dot.
func cacheKey(host string) string { return strings.ToLower(strings.TrimSuffix(host, ".")) }
