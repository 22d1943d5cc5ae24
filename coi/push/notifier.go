package push

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coibox/coibox/store"
)

const (
	// FirstWorkers send first attempts and RetryWorkers retries (§9), so a notifier
	// that is down, and fills the retry schedule, does not delay fresh notifications.
	FirstWorkers = 4
	RetryWorkers = 2
	// Timeout bounds one POST, connecting included.
	Timeout = 60 * time.Second
	// MaxAttempts is how many POSTs a job gets before it is dropped.
	MaxAttempts = 5
	// MaxAge: a job due more than this after its first attempt is dropped; the
	// message has long been fetched, or the device is gone.
	MaxAge = 5 * time.Hour

	// scanLimit is how many due jobs of each kind one look at the store lists. Of
	// those at most FirstWorkers (or RetryWorkers) are busy (in flight, or finished
	// during the look), so the list holds a job for every idle worker when there is one.
	scanLimit = 2 * max(FirstWorkers, RetryWorkers)
	// maxSleep bounds one wait of Run, in case the clock jumps or another process
	// changed the jobs; an idle look costs one indexed query.
	maxSleep = time.Minute
	// storeTimeout bounds recording an attempt's outcome.
	storeTimeout = 30 * time.Second
	// storePause is how long a worker holds a job whose outcome it could not record,
	// so that a broken store does not turn into a stream of POSTs.
	storePause = time.Minute
)

// retryDelay is the wait after the given number of successive failures: 8 s, 64 s,
// 512 s, 4096 s (8^n seconds).
func retryDelay(failures int) time.Duration {
	return time.Duration(1<<(3*failures)) * time.Second
}

// Options tune a Notifier. The zero value is usable.
type Options struct {
	// Client sends the POSTs; nil means NewClient().
	Client *http.Client
	// Now is the clock; nil means time.Now. Tests move it and call Kick.
	Now    func() time.Time
	Logger *slog.Logger
}

// Notifier sends the store's push jobs to the notification proxy.
type Notifier struct {
	st     *store.Store
	url    string
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	kick chan struct{}
	wake chan struct{} // a worker finished a job

	mu       sync.Mutex
	inflight map[int64]bool // job ids handed to a worker and not yet recorded
	// finished holds the jobs workers released since the current scan began. The
	// scan's snapshot may predate their outcome, so its rows for them are stale.
	finished map[int64]bool
	idle     [2]int // idle workers per pool (firstPool, retryPool)
}

// NewClient is the HTTP client a Notifier uses by default: one keep-alive
// connection pool for all workers, HTTP/2 over TLS.
func NewClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// A Transport with its own dialer speaks HTTP/2 only when asked to.
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: FirstWorkers + RetryWorkers,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
}

// NewNotifier returns a notifier that POSTs to notifyURL (push.notify_url). Call Run
// to start it.
func NewNotifier(st *store.Store, notifyURL string, o Options) (*Notifier, error) {
	u, err := url.Parse(notifyURL)
	if err != nil {
		return nil, fmt.Errorf("parse notify url: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("parse notify url %q: not an http or https URL", notifyURL)
	}
	if o.Client == nil {
		o.Client = NewClient()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{
		st:       st,
		url:      notifyURL,
		client:   o.Client,
		now:      o.Now,
		log:      o.Logger,
		kick:     make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		inflight: map[int64]bool{},
		finished: map[int64]bool{},
	}, nil
}

// Kick makes Run look at the jobs now, e.g. right after a trigger. It never blocks.
func (n *Notifier) Kick() { signal(n.kick) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run sends due jobs until ctx ends, then waits for the workers to stop and returns
// nil. A POST cut short by the end of ctx leaves its job as it was, due again at the
// next start. Close the store only after Run returned. Run once per Notifier.
func (n *Notifier) Run(ctx context.Context) error {
	n.mu.Lock()
	n.idle = [2]int{FirstWorkers, RetryWorkers}
	n.mu.Unlock()
	// Buffered to the pool's size: dispatch sends only while it counts an idle
	// worker, so a send never blocks, even before the workers have started.
	pools := [2]chan store.PushJob{make(chan store.PushJob, FirstWorkers), make(chan store.PushJob, RetryWorkers)}
	var wg sync.WaitGroup
	for k, size := range [2]int{FirstWorkers, RetryWorkers} {
		for range size {
			wg.Go(func() { n.worker(ctx, k, pools[k]) })
		}
	}
	defer wg.Wait()
	for {
		next, err := n.dispatch(ctx, pools)
		if err != nil && ctx.Err() == nil {
			n.log.Error("push: scan failed", "err", err)
			next = n.now().Add(maxSleep)
		}
		wait := maxSleep
		if !next.IsZero() {
			wait = min(max(next.Sub(n.now()), 0), maxSleep)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-n.kick:
		case <-n.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// The two worker pools: first attempts and retries.
const (
	firstPool = 0
	retryPool = 1
)

// dispatch hands due jobs that are not in flight to idle workers and returns when the
// next job becomes due (zero: none pending). Jobs no worker was free for stay in the
// store; a worker's wake brings the next look.
func (n *Notifier) dispatch(ctx context.Context, pools [2]chan store.PushJob) (time.Time, error) {
	now := n.now()
	n.mu.Lock()
	clear(n.finished)
	n.mu.Unlock()
	jobs, err := n.st.DuePushJobs(ctx, now, scanLimit)
	if err != nil {
		return time.Time{}, err
	}
	for _, j := range jobs {
		k := firstPool
		if j.Attempts > 0 {
			k = retryPool
		}
		n.mu.Lock()
		// A job finished during the scan may have been listed before its outcome
		// was committed: this row is stale (the attempt it describes is over), and
		// the worker's wake brings a scan that sees the new row.
		take := n.idle[k] > 0 && !n.inflight[j.ID] && !n.finished[j.ID]
		if take {
			n.idle[k]--
			n.inflight[j.ID] = true
		}
		n.mu.Unlock()
		if take {
			pools[k] <- j
		}
	}
	return n.st.NextPushAttempt(ctx, now)
}

func (n *Notifier) worker(ctx context.Context, pool int, jobs <-chan store.PushJob) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-jobs:
			n.attempt(ctx, j)
			// Only now, with the outcome committed (invariant 4).
			n.mu.Lock()
			delete(n.inflight, j.ID)
			n.finished[j.ID] = true
			n.idle[pool]++
			n.mu.Unlock()
			signal(n.wake)
		}
	}
}

// attempt sends one job and records the outcome before returning (invariant 4).
func (n *Notifier) attempt(ctx context.Context, j store.PushJob) {
	log := n.log.With("job", j.ID, "account", j.AccountID, "token", TokenID(j.Token), "attempt", j.Attempts+1)
	start := n.now()
	if j.Attempts >= MaxAttempts || (j.Attempts > 0 && start.Sub(j.FirstAttempt) > MaxAge) {
		log.Warn("push: job dropped, due too long after its first attempt", "first_attempt", j.FirstAttempt)
		n.record(ctx, log, "drop", func(c context.Context) error { return n.st.PushJobDrop(c, j.ID, j.Triggers) })
		return
	}
	status, err := n.post(ctx, j.Token)
	if err != nil && ctx.Err() != nil {
		// Shutting down: the failure says nothing about the proxy (invariant 5).
		return
	}
	switch {
	case err == nil && status == http.StatusOK:
		log.Debug("push: notified")
		n.record(ctx, log, "done", func(c context.Context) error { return n.st.PushJobDone(c, j.ID, j.Triggers) })
	case err == nil && status == http.StatusGone:
		// The proxy says the device is gone. Deleting the token deletes its job too.
		log.Info("push: token refused with 410, deleted")
		n.record(ctx, log, "delete token", func(c context.Context) error { return n.st.DeletePushToken(c, j.AccountID, j.Token) })
	default:
		if err == nil {
			err = fmt.Errorf("notifier answered %d", status)
		}
		failures := j.Attempts + 1
		firstAt := j.FirstAttempt
		if failures == 1 {
			firstAt = start
		}
		next := n.now().Add(retryDelay(failures))
		if failures >= MaxAttempts || next.Sub(firstAt) > MaxAge {
			log.Warn("push: job dropped after failure", "err", err)
			n.record(ctx, log, "drop", func(c context.Context) error { return n.st.PushJobDrop(c, j.ID, j.Triggers) })
			return
		}
		log.Info("push: attempt failed, will retry", "err", err, "retry_at", next)
		n.record(ctx, log, "retry", func(c context.Context) error { return n.st.PushJobRetry(c, j.ID, start, next) })
	}
}

// record commits an outcome even while Run is stopping: a notification that was
// accepted should not be sent again after the restart.
func (n *Notifier) record(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := fn(c); err != nil {
		log.Error("push: record outcome", "outcome", what, "err", err)
		// Held in flight meanwhile, so the next look does not POST it again at once.
		select {
		case <-ctx.Done():
		case <-time.After(storePause):
		}
	}
}

// post sends one token, the raw token string as the body (§9), and returns the
// answer's status.
func (n *Notifier) post(ctx context.Context, token string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, strings.NewReader(token))
	if err != nil {
		return 0, fmt.Errorf("make notification request: %w", err)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// The error names the URL, never the body, so it may be logged.
		return 0, fmt.Errorf("post notification: %w", err)
	}
	defer resp.Body.Close()
	// Read a short answer to its end, so the connection carries the next POST.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}
