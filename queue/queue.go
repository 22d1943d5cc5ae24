package queue

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/coibox/coibox/queue/mtasts"
	"github.com/coibox/coibox/store"
)

// Resolver is the DNS the queue needs; *dnsx.Resolver satisfies it. Errors follow
// dnsx's conventions: *net.DNSError with IsNotFound for NXDOMAIN, dnsx.ErrNullMX.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) ([]*net.MX, error)
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Signer adds DKIM signatures; *dkim.KeyStore satisfies it. Sign returns the header
// fields to prepend to msg, signed for domain. No key for domain (nil, nil, or an
// error wrapping fs.ErrNotExist) sends the message unsigned; any other error keeps it
// queued.
type Signer interface {
	Sign(ctx context.Context, domain string, msg []byte) ([]byte, error)
}

// Federation delivers over chatmail's HTTPS /mxdeliv (spec/chatmail.md §11.2) and
// remembers which MX hosts lack it; *mxdeliv.Client satisfies it. The queue asks
// Skip before offering a host a message, calls MarkSMTP when SMTP took a message
// that the host's /mxdeliv had not, and Forget when it cannot connect to the host
// by SMTP (connection or TLS error).
type Federation interface {
	// Deliver offers the signed message for rcpts; delivered means every one of
	// them has it. The error, when not delivered, is for the log.
	Deliver(ctx context.Context, mxHost, sender string, rcpts []string, msg []byte) (delivered bool, err error)
	Skip(mxHost string) bool
	MarkSMTP(mxHost string)
	Forget(mxHost string)
}

// Smarthost TLS modes, as in the queue.smarthost_tls setting.
const (
	SmarthostSTARTTLS = "starttls"
	SmarthostTLS      = "tls"
	SmarthostNone     = "none"
)

// Smarthost is a relay that receives all outbound mail instead of the MX hosts.
type Smarthost struct {
	Addr     string // "host:port"
	User     string // "" sends without AUTH
	Password string
	// TLS is SmarthostSTARTTLS (the default), SmarthostTLS (implicit TLS) or
	// SmarthostNone. With TLS the certificate must verify: credentials and all mail
	// go this way.
	TLS string
}

// Metrics are optional hooks for counting what the queue does.
type Metrics struct {
	// Recipient is called per recipient attempt with "delivered", "deferred",
	// "bounced" (permanent failure) or "expired" (given up after Lifetime).
	Recipient func(result string)
	// Connection is called per SMTP connection with "verified" (TLS with a valid
	// certificate), "unverified" (TLS without one) or "plain".
	Connection func(tls string)
	// Transaction is called after each SMTP transaction with its duration.
	Transaction func(d time.Duration)
	// DSN is called per notification generated, with "failed" or "delayed".
	DSN func(action string)
}

// Options configure a Queue. Zero values mean the documented defaults.
type Options struct {
	// Hostname is the name in EHLO, in DSNs and in MAILER-DAEMON@; default os.Hostname.
	Hostname string
	// Resolver answers MX, address and MTA-STS TXT lookups. Required.
	Resolver Resolver
	// Signer, if set, DKIM-signs every message just before it is sent.
	Signer Signer
	// RemotePort is the port of MX hosts; default 25.
	RemotePort int
	// Lifetime is how long a message is retried before it bounces; default 5 days.
	Lifetime time.Duration
	// LifetimeFor, if set, overrides Lifetime per sender domain (chatmail domains keep
	// messages a shorter time); returning 0 means Lifetime.
	LifetimeFor func(senderDomain string) time.Duration
	// DelayNotice is how long a message waits before its sender is told it is delayed;
	// 0 sends no delay notices (as the queue.delay_notice setting "0s" means).
	DelayNotice time.Duration
	// MinRetry is the first wait after a temporary failure, doubling up to MaxRetry;
	// defaults 5 minutes and 4 hours.
	MinRetry, MaxRetry time.Duration
	// Smarthost, if set, receives all outbound mail.
	Smarthost *Smarthost
	// RootCAs verify server certificates (MX hosts, MTA-STS policy hosts, the
	// smarthost); nil means the system roots.
	RootCAs *x509.CertPool
	// Concurrency is how many destinations are served at once; default 16.
	Concurrency int
	// ConnsPerDomain is how many connections one destination domain gets; default 4.
	ConnsPerDomain int
	// CommandTimeout bounds each SMTP command; default 5 minutes (RFC 5321 4.5.3.2).
	CommandTimeout time.Duration
	// LocalDeliver, if set, is offered each DSN first; when it reports the recipient
	// (the original sender) handled, the DSN is not queued. cmd wires the delivery
	// pipeline here so that bounces to local senders land in their mailbox directly.
	LocalDeliver func(ctx context.Context, rcpt string, msg []byte) (handled bool, err error)
	// Federation, if set, is offered each message for each MX host, in preference
	// order, before SMTP on that host; what it does not take goes by SMTP to the
	// same host. Not used with a Smarthost, for address literals, or for REQUIRETLS
	// messages (RFC 8689 asks for an SMTP peer that announces REQUIRETLS).
	Federation Federation
	// FederateFor, if set, says per sender domain ("" for the null sender) whether
	// Federation is used; nil means for every sender.
	FederateFor func(senderDomain string) bool
	// Now is the clock; default time.Now. Tests move it.
	Now func() time.Time
	// Dialer opens connections (SMTP and MTA-STS HTTPS); default a net.Dialer with a
	// 30 s timeout. Tests redirect addresses with it.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger *slog.Logger
	// Metrics hooks, all optional.
	Metrics Metrics
}

// Queue is the outbound delivery worker.
type Queue struct {
	st   *store.Store
	opts Options
	log  *slog.Logger
	sts  *mtasts.Client

	kick chan struct{}
	wake chan struct{} // a worker finished: capacity and recipients were freed

	mu       sync.Mutex
	inflight map[int64]bool // queue_rcpts ids being delivered
	busyAt   map[string]int // recipients in flight per recipient domain
	perDest  map[string]int // workers per destination
	workers  int
	wg       sync.WaitGroup
}

const (
	defaultLifetime    = 5 * 24 * time.Hour
	defaultMinRetry    = 5 * time.Minute
	defaultMaxRetry    = 4 * time.Hour
	defaultConcurrency = 16
	defaultPerDomain   = 4
	dialTimeout        = 30 * time.Second
	// batchSize is how many due recipients one scan of the queue picks up when
	// everything goes to a smarthost.
	batchSize = 1000
	// jobsPerWorker caps the messages one worker takes at once, so that a busy
	// destination's backlog is spread over its connections and new mail is not
	// stuck behind a long list.
	jobsPerWorker = 64
	// maxSleep bounds one wait of the worker loop, in case the clock jumps, and so
	// that changes made by another process (`coibox queue retry` beside a running
	// server) are seen within a minute; an idle look costs one indexed query.
	maxSleep = time.Minute
	// storeTimeout bounds recording an attempt's outcome.
	storeTimeout = 30 * time.Second
)

// New returns a queue over st. Call Run to start delivering.
func New(st *store.Store, opts Options) *Queue {
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.RemotePort == 0 {
		opts.RemotePort = 25
	}
	if opts.Lifetime <= 0 {
		opts.Lifetime = defaultLifetime
	}
	if opts.MinRetry <= 0 {
		opts.MinRetry = defaultMinRetry
	}
	if opts.MaxRetry <= 0 {
		opts.MaxRetry = defaultMaxRetry
	}
	if opts.MaxRetry < opts.MinRetry {
		opts.MaxRetry = opts.MinRetry
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = defaultConcurrency
	}
	if opts.ConnsPerDomain <= 0 {
		opts.ConnsPerDomain = defaultPerDomain
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dialer == nil {
		d := &net.Dialer{Timeout: dialTimeout}
		opts.Dialer = d.DialContext
	}
	q := &Queue{
		st:       st,
		opts:     opts,
		log:      opts.Logger,
		kick:     make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		inflight: map[int64]bool{},
		busyAt:   map[string]int{},
		perDest:  map[string]int{},
	}
	q.sts = mtasts.New(mtasts.Options{
		Resolver: opts.Resolver,
		Store:    st,
		RootCAs:  opts.RootCAs,
		Dial:     opts.Dialer,
		Now:      opts.Now,
		Logger:   opts.Logger,
	})
	return q
}

// Kick makes Run look at the queue now, e.g. right after a message was enqueued. It
// never blocks.
func (q *Queue) Kick() { signal(q.kick) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run delivers due messages until ctx ends, then waits for deliveries in progress to
// stop and returns nil. Deliveries interrupted by the end of ctx leave their
// recipients untouched in the store, due again at the next start. Close the store
// only after Run returned.
func (q *Queue) Run(ctx context.Context) error {
	defer q.wg.Wait()
	for {
		next, err := q.dispatch(ctx)
		if err != nil && ctx.Err() == nil {
			q.log.Error("queue: scan failed", "err", err)
			next = q.opts.Now().Add(time.Minute)
		}
		wait := maxSleep
		if !next.IsZero() {
			wait = min(max(next.Sub(q.opts.Now()), 0), maxSleep)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-q.kick:
		case <-q.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// job is one message's recipients at one destination domain, delivered in one
// SMTP transaction.
type job struct {
	entry  store.QueueEntry // Rcpts holds only this job's recipients
	domain string
}

// dispatch starts workers for the due recipients that are not in flight yet and
// returns when the next recipient becomes due (zero: none pending).
func (q *Queue) dispatch(ctx context.Context) (time.Time, error) {
	now := q.opts.Now()
	var err error
	if q.opts.Smarthost != nil {
		err = q.dispatchAll(ctx, now)
	} else {
		err = q.dispatchByDomain(ctx, now)
	}
	if err != nil {
		return time.Time{}, err
	}
	return q.st.NextQueueAttempt(ctx, now)
}

// dispatchAll serves the smarthost, the single destination of everything.
func (q *Queue) dispatchAll(ctx context.Context, now time.Time) error {
	q.mu.Lock()
	busy := len(q.inflight)
	full := q.workers >= q.opts.Concurrency
	q.mu.Unlock()
	if full {
		return nil
	}
	entries, err := q.st.QueueEntries(ctx, now, batchSize+busy)
	if err != nil {
		return err
	}
	q.start(ctx, q.group(entries))
	return nil
}

// dispatchByDomain asks the store destination by destination, so that a long backlog
// for one busy domain cannot keep mail for the others waiting behind it.
func (q *Queue) dispatchByDomain(ctx context.Context, now time.Time) error {
	if q.full() {
		return nil
	}
	due, err := q.st.QueueDue(ctx, now)
	if err != nil {
		return err
	}
	// Map order is random: when workers run out, no destination is always first.
	for domain, n := range due {
		q.mu.Lock()
		free := q.opts.ConnsPerDomain - q.perDest[domain]
		busy := q.busyAt[domain]
		full := q.workers >= q.opts.Concurrency
		q.mu.Unlock()
		if full {
			break
		}
		if free <= 0 || n <= busy {
			continue
		}
		entries, err := q.st.QueueEntriesTo(ctx, domain, now, min(free*jobsPerWorker, n-busy)+busy)
		if err != nil {
			return err
		}
		q.start(ctx, q.group(entries))
	}
	return nil
}

func (q *Queue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.workers >= q.opts.Concurrency
}

// group splits entries into jobs per destination, leaving out recipients in flight.
// With a smarthost every recipient goes to the same place, so one message is one job.
func (q *Queue) group(entries []store.QueueEntry) map[string][]*job {
	q.mu.Lock()
	defer q.mu.Unlock()
	byDest := map[string][]*job{}
	for _, e := range entries {
		jobs := map[string]*job{}
		var order []string
		for _, r := range e.Rcpts {
			if q.inflight[r.ID] {
				continue
			}
			dest := r.Domain
			if q.opts.Smarthost != nil {
				dest = ""
			}
			j := jobs[dest]
			if j == nil {
				j = &job{entry: e, domain: dest}
				j.entry.Rcpts = nil
				jobs[dest] = j
				order = append(order, dest)
			}
			j.entry.Rcpts = append(j.entry.Rcpts, r)
		}
		for _, d := range order {
			byDest[d] = append(byDest[d], jobs[d])
		}
	}
	return byDest
}

// start hands jobs to workers within the concurrency limits. Jobs left over stay in
// the store and are picked up by a later scan, when a worker has finished.
func (q *Queue) start(ctx context.Context, byDest map[string][]*job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for dest, jobs := range byDest {
		for len(jobs) > 0 && q.workers < q.opts.Concurrency && q.perDest[dest] < q.opts.ConnsPerDomain {
			// Spread a backlog over the destination's free connections.
			free := q.opts.ConnsPerDomain - q.perDest[dest]
			n := min(max((len(jobs)+free-1)/free, 1), jobsPerWorker, len(jobs))
			batch := jobs[:n]
			jobs = jobs[n:]
			for _, j := range batch {
				for _, r := range j.entry.Rcpts {
					q.inflight[r.ID] = true
					q.busyAt[r.Domain]++
				}
			}
			q.workers++
			q.perDest[dest]++
			q.wg.Add(1)
			go q.work(ctx, dest, batch)
		}
	}
}

// work delivers a batch of jobs for one destination, over one connection where it can.
func (q *Queue) work(ctx context.Context, dest string, jobs []*job) {
	defer q.wg.Done()
	w := &worker{q: q, dest: dest}
	defer func() {
		w.closeConn()
		q.mu.Lock()
		for _, j := range jobs {
			for _, r := range j.entry.Rcpts {
				delete(q.inflight, r.ID)
				if q.busyAt[r.Domain]--; q.busyAt[r.Domain] <= 0 {
					delete(q.busyAt, r.Domain)
				}
			}
		}
		q.workers--
		if q.perDest[dest]--; q.perDest[dest] == 0 {
			delete(q.perDest, dest)
		}
		q.mu.Unlock()
		signal(q.wake)
	}()
	for _, j := range jobs {
		if ctx.Err() != nil {
			return
		}
		results := w.deliver(ctx, j)
		if ctx.Err() != nil {
			// Shutting down: an attempt we cut short says nothing about the
			// destination, so leave its recipients due as they were, but do
			// record what the remote server already took.
			results = onlyDelivered(results)
		}
		if err := q.record(ctx, j, results); err != nil {
			q.log.Error("queue: record delivery outcome", "queue_id", j.entry.ID, "err", err)
		}
	}
}

func onlyDelivered(rs []result) []result {
	var out []result
	for _, r := range rs {
		if r.kind == delivered {
			out = append(out, r)
		}
	}
	return out
}
