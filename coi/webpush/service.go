package webpush

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the §10 settings and of the notifier's own bounds.
const (
	DefaultSubscriptionLimit = 10
	DefaultValidationWindow  = 5 * time.Minute
	DefaultTimeout           = 10 * time.Second
	DefaultTTL               = 30 * time.Second
	DefaultWorkers           = 4
	DefaultQueueSize         = 1024

	// Subscribe attempts per account per throttleWindow (§8.3, D13).
	throttleAttempts = 20
	throttleWindow   = time.Hour
	// jwtLifetime is exp − now (D3): long enough for any clock skew, under OXPUSH's
	// 24 h bound.
	jwtLifetime = 12 * time.Hour
	// validationSize is the random part of a validation string (§8.4).
	validationSize = 32
)

// Options configure a Service; zero values take the defaults above.
type Options struct {
	// PrimaryDomain names the server in the VAPID sub claim:
	// mailto:postmaster@<PrimaryDomain> (§8.9). Required.
	PrimaryDomain string
	// SubscriptionLimit is webpush.subscription_limit: pending + validated
	// subscriptions per account.
	SubscriptionLimit int
	// ValidationWindow is webpush.validation_window.
	ValidationWindow time.Duration
	// Timeout bounds each request, connecting included (webpush.timeout).
	Timeout time.Duration
	// TTL is the TTL header (webpush.ttl), in whole seconds.
	TTL time.Duration
	// Padding pads each body to the next 1 KiB (webpush.padding).
	Padding bool
	// AllowEndpoints is webpush.allow_endpoints: host or host:port entries exempt
	// from the public-address rule.
	AllowEndpoints []string
	// HTTPSProxy is webpush.https_proxy, a URL; "" connects directly. The
	// environment's proxy settings are not used: the admin sets this one.
	HTTPSProxy string
	// Resolver looks endpoints up (cmd passes dnsx's NetResolver); nil: Go's default.
	Resolver *net.Resolver
	// TLSConfig is cloned for the connections to endpoints; nil: the system roots.
	// Tests put their CA here.
	TLSConfig *tls.Config
	// Workers bound the concurrent requests; QueueSize bounds the deliveries and,
	// separately, the requests waiting.
	Workers   int
	QueueSize int

	// Load returns an account's stored subscription values by id (the entries below
	// SubscriptionsEntry). Required: the notifier calls it for each delivery it is
	// given, from a worker.
	Load func(ctx context.Context, account int64) (map[string][]byte, error)
	// Remove deletes subscription id of account if its entry still holds stored (a
	// compare-and-delete; see invariant 2). Required: the notifier calls it after a
	// 404 or 410, after repeated refusals, and for pending subscriptions whose window
	// passed.
	Remove func(ctx context.Context, account int64, id string, stored []byte) error

	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Rand makes validation strings and salts; nil: crypto/rand. Ephemeral keys
	// always come from crypto/rand.
	Rand   io.Reader
	Logger *slog.Logger
}

// Service is one coibox instance's WebPush: subscription rules, the validation push,
// and the notifier (started by Run).
type Service struct {
	key     *Key
	o       Options
	sub     string // the JWT sub claim
	allow   allowList
	client  *http.Client
	log     *slog.Logger
	backoff []time.Duration // waits before the retries, without Retry-After

	// deliveries wait for a worker to read their subscriptions, requests for a
	// worker to send them; both are bounded by QueueSize (invariant 3).
	deliveries chan *scanned
	requests   chan task
	stopped    atomic.Bool
	retries    atomic.Int64 // retry timers not yet fired

	mu       sync.Mutex
	attempts map[int64][]time.Time // subscribe attempts in the last throttleWindow
	pending  map[subKey]pendingSub // for the sweep
	refusals map[subKey]int        // consecutive 4xx-like outcomes (§8.10)
}

type subKey struct {
	account int64
	id      string
}

type pendingSub struct {
	stored   []byte
	deadline time.Time
}

// New returns a Service signing with key. Call Run to start the notifier.
func New(key *Key, o Options) (*Service, error) {
	if key == nil {
		return nil, errors.New("make webpush service: no vapid key")
	}
	if o.PrimaryDomain == "" {
		return nil, errors.New("make webpush service: no primary domain")
	}
	if o.Load == nil || o.Remove == nil {
		return nil, errors.New("make webpush service: Load and Remove are required")
	}
	setDefault(&o.SubscriptionLimit, DefaultSubscriptionLimit)
	setDefault(&o.ValidationWindow, DefaultValidationWindow)
	setDefault(&o.Timeout, DefaultTimeout)
	setDefault(&o.TTL, DefaultTTL)
	setDefault(&o.Workers, DefaultWorkers)
	setDefault(&o.QueueSize, DefaultQueueSize)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	allow, err := newAllowList(o.AllowEndpoints)
	if err != nil {
		return nil, fmt.Errorf("make webpush service: %w", err)
	}
	d := &dialer{allow: allow, resolver: o.Resolver, timeout: o.Timeout}
	tr := &http.Transport{
		DialContext: d.DialContext,
		// A Transport with its own dialer speaks HTTP/2 only when asked to.
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: o.Timeout,
		MaxIdleConnsPerHost: o.Workers,
		IdleConnTimeout:     90 * time.Second,
		// No Accept-Encoding: the header set is the spec's, and bodies are discarded.
		DisableCompression: true,
	}
	if o.TLSConfig != nil {
		tr.TLSClientConfig = o.TLSConfig.Clone()
	}
	if o.HTTPSProxy != "" {
		pu, err := url.Parse(o.HTTPSProxy)
		if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
			return nil, fmt.Errorf("make webpush service: https proxy %q is not an http(s) URL", o.HTTPSProxy)
		}
		tr.Proxy = http.ProxyURL(pu)
		port := pu.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[pu.Scheme]
		}
		d.proxy = net.JoinHostPort(normHost(pu.Hostname()), port)
	}
	return &Service{
		key:   key,
		o:     o,
		sub:   "mailto:postmaster@" + o.PrimaryDomain,
		allow: allow,
		client: &http.Client{
			Transport: tr,
			// A redirect could lead anywhere, including to an allow-listed host; the
			// spec has no use for one, so a 3xx is an answer like any other.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:        log,
		backoff:    []time.Duration{time.Second, 4 * time.Second},
		deliveries: make(chan *scanned, o.QueueSize),
		requests:   make(chan task, o.QueueSize),
		attempts:   map[int64][]time.Time{},
		pending:    map[subKey]pendingSub{},
		refusals:   map[subKey]int{},
	}, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Subscribe handles a SET of SubscriptionEntry(id) to value (§8.3, §8.4). current is
// the account's stored subscription values by id, for the limit. It checks the id,
// the throttle, the value and the limit, makes sure the endpoint is public (or
// allow-listed), and POSTs the validation push, synchronously, bounded by the
// timeout. On success it returns the value to store under SubscriptionEntry(id),
// replacing any earlier one; on failure nothing must be stored.
//
// Two sessions of one account subscribing new ids at once may both pass the limit
// check; the caller may serialise SETs per account if it must be exact.
func (s *Service) Subscribe(ctx context.Context, account int64, id string, value []byte, current map[string][]byte) ([]byte, error) {
	if !ValidID(id) {
		return nil, ErrInvalidID
	}
	now := s.o.Now()
	if !s.attempt(account, now) {
		return nil, ErrThrottled
	}
	sub, err := ParseSubscription(value)
	if err != nil {
		return nil, err
	}
	n := 0
	for other, stored := range current {
		if other == id { // replacing never counts (D6)
			continue
		}
		if o, err := DecodeStored(stored); err == nil && !s.expired(o, now) {
			n++
		}
	}
	if n >= s.o.SubscriptionLimit {
		return nil, ErrTooMany
	}
	if err := s.checkEndpoint(ctx, sub.endpoint); err != nil {
		return nil, err
	}

	token := make([]byte, validationSize)
	if _, err := io.ReadFull(s.o.Rand, token); err != nil {
		return nil, fmt.Errorf("make validation string: %w", err)
	}
	sub.validation = base64.StdEncoding.EncodeToString(token)
	body := append(append([]byte(`{"validation":`), appendJSONString(nil, sub.validation)...), '}')
	rctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	res := s.post(rctx, sub, body, true)
	if res.err != nil {
		s.log.Debug("webpush: validation push failed", "account", account, "host", sub.endpoint.Host, "err", res.err)
		return nil, validationFailed(transportReason(res.err), res.err)
	}
	if res.status < 200 || res.status > 299 {
		s.log.Debug("webpush: validation push refused", "account", account, "host", sub.endpoint.Host, "status", res.status)
		return nil, validationFailed(fmt.Sprintf("HTTP %d", res.status), nil)
	}

	sub.Created = now.UTC().Truncate(time.Second)
	stored := sub.encodeStored()
	k := subKey{account, id}
	s.mu.Lock()
	s.pending[k] = pendingSub{stored: stored, deadline: sub.Created.Add(s.o.ValidationWindow)}
	delete(s.refusals, k)
	s.mu.Unlock()
	return stored, nil
}

// attempt counts a subscribe attempt and reports whether it is within the throttle.
// A refused attempt is not counted, so a client that keeps retrying gets in again an
// hour after its burst.
func (s *Service) attempt(account int64, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	times := dropBefore(s.attempts[account], now.Add(-throttleWindow))
	if len(times) >= throttleAttempts {
		s.attempts[account] = times
		return false
	}
	s.attempts[account] = append(times, now)
	return true
}

func dropBefore(times []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(times) && !times[i].After(cutoff) {
		i++
	}
	return times[i:]
}

// checkEndpoint applies the public-address rule at subscribe time (§8.3): an IP
// literal or every address the name has must be public, unless allow-listed. The
// dialer checks again at each connection.
func (s *Service) checkEndpoint(ctx context.Context, u *url.URL) error {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	if s.allow.allows(host, port) {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !publicAddr(a) {
			return InvalidField("endpoint")
		}
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	addrs, err := s.o.Resolver.LookupNetIP(lctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		if s.o.HTTPSProxy != "" {
			return nil // the proxy may know names we do not; it resolves for itself
		}
		if err == nil {
			err = errors.New("no addresses")
		}
		return validationFailed(transportReason(err), fmt.Errorf("look up endpoint: %w", err))
	}
	for _, a := range addrs {
		if !publicAddr(a) {
			return InvalidField("endpoint")
		}
	}
	return nil
}

// Validate handles a SET of SubscriptionEntry(id)+"/validate" (§8.4 step 4). stored
// is the subscription's current value (nil if there is none), value the client's
// (nil for NIL). It returns the validated value to store in its place.
func (s *Service) Validate(account int64, id string, stored, value []byte) ([]byte, error) {
	if value == nil {
		return nil, ErrUnsetValidation
	}
	if stored == nil {
		return nil, ErrInvalidValidation
	}
	sub, err := DecodeStored(stored)
	if err != nil || sub.Validated || s.expired(sub, s.o.Now()) ||
		subtle.ConstantTimeCompare([]byte(sub.validation), value) != 1 {
		return nil, ErrInvalidValidation
	}
	sub.Validated, sub.validation = true, ""
	s.mu.Lock()
	delete(s.pending, subKey{account, id})
	s.mu.Unlock()
	return sub.encodeStored(), nil
}

// Unsubscribe forgets what the service holds about a subscription the client SET to
// NIL (§8.1); the caller deletes the entry, and answers OK even if there was none.
func (s *Service) Unsubscribe(account int64, id string) {
	k := subKey{account, id}
	s.mu.Lock()
	delete(s.pending, k)
	delete(s.refusals, k)
	s.mu.Unlock()
}

// Public is the GET value of a stored subscription (§8.5). It reports false for a
// value that must not be shown and should be deleted: a pending subscription past its
// window (§8.4 step 5), or one that does not decode.
func (s *Service) Public(stored []byte) ([]byte, bool) {
	sub, err := DecodeStored(stored)
	if err != nil || s.expired(sub, s.o.Now()) {
		return nil, false
	}
	return sub.PublicJSON(), true
}

func (s *Service) expired(sub *Subscription, now time.Time) bool {
	return !sub.Validated && now.After(sub.Created.Add(s.o.ValidationWindow))
}

// sweep deletes the pending subscriptions whose window has passed (§8.4 step 5); the
// ones validated or re-SET since are spared by Remove's comparison.
func (s *Service) sweep(ctx context.Context) {
	now := s.o.Now()
	var due []subKey
	var vals [][]byte
	s.mu.Lock()
	for k, p := range s.pending {
		if now.After(p.deadline) {
			due = append(due, k)
			vals = append(vals, p.stored)
			delete(s.pending, k)
		}
	}
	for a, times := range s.attempts {
		if times = dropBefore(times, now.Add(-throttleWindow)); len(times) == 0 {
			delete(s.attempts, a)
		} else {
			s.attempts[a] = times
		}
	}
	s.mu.Unlock()
	for i, k := range due {
		if err := s.o.Remove(ctx, k.account, k.id, vals[i]); err != nil {
			s.log.Warn("webpush: remove expired subscription", "account", k.account, "err", err)
		}
	}
}

// transportReason names a failed request for the client (§8.4 step 3).
func transportReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	case isTLSError(err):
		return reasonTLS
	}
	return reasonConnect
}

func isTLSError(err error) bool {
	var (
		verify *tls.CertificateVerificationError
		header tls.RecordHeaderError
		alert  tls.AlertError
	)
	return errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &alert)
}

// Key is the VAPID key the service signs with.
func (s *Service) Key() *Key { return s.key }
