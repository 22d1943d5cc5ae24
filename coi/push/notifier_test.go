package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coibox/coibox/store"
)

// clock is the notifier's clock in tests: it moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// logBuf collects a notifier's log, to check what it says about tokens.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type request struct {
	method, body string
	proto        int
}

// sink is a local notification proxy: it records each POST and answers with the
// status answer gives for it (0-based), after hold, if set, is closed.
type sink struct {
	srv    *httptest.Server
	reqs   chan request
	mu     sync.Mutex
	n      int
	answer func(n int) int
	hold   chan struct{}
	conns  int
}

func newSink(t *testing.T, answer func(n int) int) *sink {
	s := &sink{reqs: make(chan request, 100), answer: answer}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	return s
}

func (s *sink) start(t *testing.T) *sink {
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := s.n
	s.n++
	hold := s.hold
	s.mu.Unlock()
	s.reqs <- request{method: r.Method, body: string(body), proto: r.ProtoMajor}
	if hold != nil {
		<-hold
	}
	w.WriteHeader(s.answer(n))
}

func (s *sink) next(t *testing.T) request {
	t.Helper()
	select {
	case r := <-s.reqs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no notification arrived")
	}
	return request{}
}

// quiet checks that no notification arrives for a while.
func (s *sink) quiet(t *testing.T) {
	t.Helper()
	select {
	case r := <-s.reqs:
		t.Fatalf("unexpected notification %.30q", r.body)
	case <-time.After(100 * time.Millisecond):
	}
}

func statuses(codes ...int) func(int) int {
	return func(n int) int {
		if n < len(codes) {
			return codes[n]
		}
		return codes[len(codes)-1]
	}
}

type env struct {
	st    *store.Store
	acc   *store.Account
	clk   *clock
	tk    *Tokens
	n     *Notifier
	log   *logBuf
	token string
}

// newEnv sets up alice with one token at t0 and a running notifier posting to url.
func newEnv(t *testing.T, url string) *env { return newEnvClient(t, url, nil) }

func newEnvClient(t *testing.T, url string, client *http.Client) *env {
	st, a := newStore(t)
	e := &env{st: st, acc: a, clk: &clock{t: t0}, log: &logBuf{}}
	e.token = "openpgp:" + strings.Repeat("c2VjcmV0", 64)
	e.start(t, url, client)
	e.tk = &Tokens{Store: st, Now: e.clk.Now, Kick: e.n.Kick}
	mustSet(t, e.tk, a.ID, e.token, t0)
	return e
}

// start runs a notifier until the test ends (before the store closes: cleanups run
// last-registered first).
func (e *env) start(t *testing.T, url string, client *http.Client) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := NewNotifier(e.st, url, Options{Client: client, Now: e.clk.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := n.Run(ctx); err != nil {
			t.Error(err)
		}
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	e.n = n
}

func (e *env) trigger(t *testing.T) {
	t.Helper()
	if err := e.tk.Trigger(context.Background(), e.acc.ID, "alice@example.org", "bob@example.net"); err != nil {
		t.Fatal(err)
	}
}

// moveTo sets the clock and wakes the notifier, as its timer would.
func (e *env) moveTo(at time.Time) {
	e.clk.Set(at)
	e.n.Kick()
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitJob waits until the single job has the given number of failed attempts.
func (e *env) waitJob(t *testing.T, attempts int) store.PushJob {
	t.Helper()
	var j store.PushJob
	eventually(t, fmt.Sprintf("a job with %d failed attempts", attempts), func() bool {
		js := jobs(t, e.st)
		if len(js) == 1 && js[0].Attempts == attempts {
			j = js[0]
			return true
		}
		return false
	})
	return j
}

func (e *env) waitNoJobs(t *testing.T) {
	t.Helper()
	eventually(t, "no jobs", func() bool { return len(jobs(t, e.st)) == 0 })
}

func (e *env) checkLog(t *testing.T) {
	t.Helper()
	l := e.log.String()
	if strings.Contains(l, e.token[:40]) {
		t.Errorf("the log shows the token:\n%s", l)
	}
	if !strings.Contains(l, TokenID(e.token)) {
		t.Errorf("the log does not name the token by TokenID:\n%s", l)
	}
}

// TestRetrySchedule: the sink answers 500, 500, 200. The body is the raw token each
// time; the retries come 8 s and then 64 s after the failures, not before; the 200
// ends the job.
func TestRetrySchedule(t *testing.T) {
	s := newSink(t, statuses(500, 500, 200)).start(t)
	e := newEnv(t, s.srv.URL+"/notify")
	e.trigger(t)

	r := s.next(t)
	if r.method != http.MethodPost || r.body != e.token {
		t.Fatalf("first notification: %s %.30q", r.method, r.body)
	}
	j := e.waitJob(t, 1)
	if !j.FirstAttempt.Equal(t0) || !j.NextAttempt.Equal(t0.Add(8*time.Second)) {
		t.Fatalf("after the first failure: %+v", j)
	}
	e.moveTo(t0.Add(7 * time.Second))
	s.quiet(t)

	e.moveTo(t0.Add(8 * time.Second))
	if r := s.next(t); r.body != e.token {
		t.Fatalf("second notification: %.30q", r.body)
	}
	j = e.waitJob(t, 2)
	if !j.FirstAttempt.Equal(t0) || !j.NextAttempt.Equal(t0.Add(72*time.Second)) {
		t.Fatalf("after the second failure: %+v", j)
	}
	e.moveTo(t0.Add(71 * time.Second))
	s.quiet(t)

	e.moveTo(t0.Add(72 * time.Second))
	if r := s.next(t); r.body != e.token {
		t.Fatalf("third notification: %.30q", r.body)
	}
	e.waitNoJobs(t)
	s.quiet(t)
	if toks, _ := e.st.PushTokens(context.Background(), e.acc.ID); len(toks) != 1 {
		t.Errorf("tokens after success: %+v", toks)
	}
	e.checkLog(t)
}

// TestGiveUpAfterFiveAttempts: a sink that always fails gets five POSTs, at 0, 8,
// 72, 584 and 4680 s, and then the job is dropped; the token stays.
func TestGiveUpAfterFiveAttempts(t *testing.T) {
	s := newSink(t, statuses(503)).start(t)
	e := newEnv(t, s.srv.URL)
	e.trigger(t)
	at := t0
	for i := 1; i <= MaxAttempts; i++ {
		if r := s.next(t); r.body != e.token {
			t.Fatalf("notification %d: %.30q", i, r.body)
		}
		if i == MaxAttempts {
			break
		}
		j := e.waitJob(t, i)
		at = at.Add(retryDelay(i))
		if !j.NextAttempt.Equal(at) {
			t.Fatalf("after failure %d: next %v, want %v", i, j.NextAttempt, at)
		}
		e.moveTo(at)
	}
	e.waitNoJobs(t)
	if at.Sub(t0) != (8+64+512+4096)*time.Second {
		t.Errorf("last attempt at t0+%v", at.Sub(t0))
	}
	e.moveTo(at.Add(time.Hour))
	s.quiet(t)
	if toks, _ := e.st.PushTokens(context.Background(), e.acc.ID); len(toks) != 1 {
		t.Errorf("tokens after giving up: %+v", toks)
	}
}

// TestGone: 410 deletes the token, and with it the job.
func TestGone(t *testing.T) {
	s := newSink(t, statuses(410)).start(t)
	e := newEnv(t, s.srv.URL)
	e.trigger(t)
	s.next(t)
	eventually(t, "the token deleted", func() bool {
		toks, err := e.st.PushTokens(context.Background(), e.acc.ID)
		return err == nil && len(toks) == 0
	})
	if js := jobs(t, e.st); len(js) != 0 {
		t.Errorf("jobs after 410: %+v", js)
	}
	if got := mustGet(t, e.tk, e.acc.ID, t0); got != "" {
		t.Errorf("Get after 410: %q", got)
	}
	e.checkLog(t)
}

// TestNetworkError: a proxy that cannot be reached is a failure like any other.
func TestNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	e := newEnv(t, url)
	e.trigger(t)
	j := e.waitJob(t, 1)
	if !j.NextAttempt.Equal(t0.Add(8 * time.Second)) {
		t.Errorf("after a refused connection: %+v", j)
	}
}

// TestTooOld: a job due more than 5 h after its first attempt (coibox was down) is
// dropped without a POST.
func TestTooOld(t *testing.T) {
	s := newSink(t, statuses(500)).start(t)
	e := newEnv(t, s.srv.URL)
	e.trigger(t)
	s.next(t)
	e.waitJob(t, 1)
	e.moveTo(t0.Add(MaxAge + time.Second))
	e.waitNoJobs(t)
	s.quiet(t)
}

// TestFoldDuringPost: a delivery that arrives while its token's POST is under way
// gets a notification of its own after that POST succeeded; one that arrives
// before the POST started does not (it is folded into the pending job).
func TestFoldDuringPost(t *testing.T) {
	s := newSink(t, statuses(200))
	hold := make(chan struct{})
	s.hold = hold
	s.start(t)
	e := newEnv(t, s.srv.URL)
	e.trigger(t)
	s.next(t)
	// Under way, held by the sink: another delivery.
	e.trigger(t)
	if js := jobs(t, e.st); len(js) != 1 || js[0].Triggers != 2 {
		t.Fatalf("jobs: %+v", js)
	}
	s.mu.Lock()
	s.hold = nil
	s.mu.Unlock()
	close(hold)
	if r := s.next(t); r.body != e.token {
		t.Fatalf("second notification: %.30q", r.body)
	}
	e.waitNoJobs(t)
	s.quiet(t)
}

// TestWorkers: 4 workers send first attempts and 2 send retries, side by side.
func TestWorkers(t *testing.T) {
	s := newSink(t, statuses(200))
	hold := make(chan struct{})
	s.hold = hold
	s.start(t)
	e := newEnv(t, s.srv.URL)
	ctx := context.Background()
	// Two jobs awaiting retries, due now, and six fresh ones.
	for i := range 8 {
		tok := fmt.Sprintf("openpgp:first%d", i)
		if i < 2 {
			tok = fmt.Sprintf("openpgp:retry%d", i)
		}
		mustSet(t, e.tk, e.acc.ID, tok, t0)
		if _, err := e.st.EnqueuePush(ctx, e.acc.ID, tok, t0); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			id := jobs(t, e.st)[i].ID
			if err := e.st.PushJobRetry(ctx, id, t0.Add(-time.Minute), t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.n.Kick()
	var first, retry int
	for range FirstWorkers + RetryWorkers {
		r := s.next(t)
		if strings.HasPrefix(r.body, "openpgp:retry") {
			retry++
		} else {
			first++
		}
	}
	s.quiet(t)
	if first != FirstWorkers || retry != RetryWorkers {
		t.Errorf("in flight at once: %d first attempts and %d retries", first, retry)
	}
	close(hold)
	for range 8 - FirstWorkers - RetryWorkers {
		s.next(t)
	}
	e.waitNoJobs(t)
}

// TestSurviveRestart: a job waiting for its retry when coibox stops is sent after it
// starts again, on schedule.
func TestSurviveRestart(t *testing.T) {
	ctx := context.Background()
	s := newSink(t, statuses(500, 200)).start(t)
	dir := t.TempDir()
	clk := &clock{t: t0}
	run := func() (*store.Store, *Notifier, func()) {
		st, err := store.Open(ctx, dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		n, err := NewNotifier(st, s.srv.URL, Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { n.Run(rctx); close(done) }()
		return st, n, func() {
			cancel()
			<-done
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		}
	}

	st, n, stop := run()
	if _, err := st.AddDomain(ctx, "example.org", true); err != nil {
		t.Fatal(err)
	}
	a, err := st.AddAccount(ctx, "alice@example.org", "secret-password")
	if err != nil {
		t.Fatal(err)
	}
	tk := &Tokens{Store: st, Now: clk.Now, Kick: n.Kick}
	mustSet(t, tk, a.ID, "openpgp:tok", t0)
	if err := tk.Trigger(ctx, a.ID, "alice@example.org", "bob@example.net"); err != nil {
		t.Fatal(err)
	}
	s.next(t)
	eventually(t, "the retry recorded", func() bool {
		js := jobs(t, st)
		return len(js) == 1 && js[0].Attempts == 1
	})
	stop()

	clk.Set(t0.Add(8 * time.Second))
	st, _, stop = run()
	defer stop()
	if r := s.next(t); r.body != "openpgp:tok" {
		t.Fatalf("after restart: %.30q", r.body)
	}
	eventually(t, "no jobs", func() bool { return len(jobs(t, st)) == 0 })
}

// TestClient: the default client keeps one connection for successive POSTs, and
// speaks HTTP/2 over TLS.
func TestClient(t *testing.T) {
	plain := newSink(t, statuses(200)).start(t)
	e := newEnv(t, plain.srv.URL)
	for range 3 {
		e.trigger(t)
		plain.next(t)
		e.waitNoJobs(t)
	}
	plain.mu.Lock()
	conns := plain.conns
	plain.mu.Unlock()
	if conns != 1 {
		t.Errorf("%d connections for 3 notifications, want 1", conns)
	}

	tlsSink := newSink(t, statuses(200))
	tlsSink.srv.EnableHTTP2 = true
	tlsSink.srv.StartTLS()
	t.Cleanup(tlsSink.srv.Close)
	client := NewClient()
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: tlsSink.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	e2 := newEnvClient(t, tlsSink.srv.URL, client)
	e2.trigger(t)
	if r := tlsSink.next(t); r.proto != 2 || r.body != e2.token {
		t.Errorf("over TLS: HTTP/%d, body %.30q", r.proto, r.body)
	}
	e2.waitNoJobs(t)
}

func TestNewNotifierURL(t *testing.T) {
	st, _ := newStore(t)
	for _, u := range []string{"", "notifications.delta.chat/notify", "ftp://x/notify", "https://", "http://[::1"} {
		if _, err := NewNotifier(st, u, Options{}); err == nil {
			t.Errorf("NewNotifier(%q) accepted", u)
		}
	}
	if _, err := NewNotifier(st, "https://notifications.delta.chat/notify", Options{}); err != nil {
		t.Error(err)
	}
}
