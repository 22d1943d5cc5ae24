package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coibox/coibox/internal/testutil"
)

// chatIngestRun is one path's ingest of the same number of peer messages.
type chatIngestRun struct {
	Path     string `json:"path"`     // "smtp" (port 25) or "mxdeliv" (HTTPS POST /mxdeliv)
	Protocol string `json:"protocol"` // as negotiated: "ESMTP, STARTTLS, pipelined", "HTTP/2.0", "HTTP/1.1"
	// Connections is how many TCP connections carried the messages, over all rounds
	// (each round opens its own).
	Connections int     `json:"connections"`
	Sent        int     `json:"sent"`
	Acked       int     `json:"acked"` // 250 after DATA, or HTTP 200
	Refused     int     `json:"refused"`
	Errors      int     `json:"errors"`
	FirstProb   string  `json:"first_problem,omitempty"`
	Seconds     float64 `json:"seconds"` // the rounds' times added up
	PerSecond   float64 `json:"messages_per_second"`
	// Per message: from sending MAIL FROM (or the request) to the 250 (or the 200).
	P50Ms float64 `json:"latency_p50_ms"`
	P99Ms float64 `json:"latency_p99_ms"`
	// CPU time per acknowledged message, of the server and of this client (which
	// shares the machine).
	ServerCPUPerMsgMs float64 `json:"server_cpu_per_message_ms"`
	ClientCPUPerMsgMs float64 `json:"client_cpu_per_message_ms"`
	// Stored is how many messages the store gained during the run; StoredOK that it
	// equals Acked.
	Stored   int64 `json:"stored"`
	StoredOK bool  `json:"stored_ok"`
}

// originCheck is one message the server must refuse, sent before the ingest to show
// that the checks the ingest pays for are on: an ingest that skipped them would be
// measuring something else.
type originCheck struct {
	What    string `json:"what"`
	Reply   string `json:"reply"`
	Refused bool   `json:"refused"`
}

// chatIngest compares the two ways another server delivers to a chatmail account.
type chatIngest struct {
	Messages     int           `json:"messages"` // per path
	Concurrency  int           `json:"concurrency"`
	Rounds       int           `json:"rounds"`        // alternating rounds each path's messages were sent in
	Size         int           `json:"size_bytes"`    // asked for (-size)
	MessageBytes int           `json:"message_bytes"` // of the first message, signature included
	DKIM         string        `json:"dkim"`          // key type of the peer's signatures
	PeerDomain   string        `json:"peer_domain"`
	Recipients   int           `json:"recipients"` // chatmail accounts the messages go to in turn
	Warmup       int           `json:"warmup_per_path"`
	Origin       []originCheck `json:"origin_checks"`
	SMTP         chatIngestRun `json:"smtp"`
	MXDeliv      chatIngestRun `json:"mxdeliv"`
	// Ratio is MXDeliv.PerSecond / SMTP.PerSecond.
	Ratio float64 `json:"mxdeliv_to_smtp_ratio"`
	// CPURatio is MXDeliv.ServerCPUPerMsgMs / SMTP.ServerCPUPerMsgMs: the server's
	// cost of the two paths, which a busy shared machine disturbs less than msg/s.
	CPURatio float64 `json:"mxdeliv_to_smtp_server_cpu_ratio"`
}

// chatMXLatency is the /mxdeliv-to-IDLE latency over Samples messages.
type chatMXLatency struct {
	Samples      int    `json:"samples"`
	MessageBytes int    `json:"message_bytes"`
	Protocol     string `json:"protocol"`
	// From reading the 200 answering the POST to reading "* N EXISTS".
	MedianMs float64 `json:"median_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	Early    int     `json:"exists_before_200"` // count as 0
	// From starting the request (the body's upload, the server's whole handling and
	// commit included) to the EXISTS.
	ReqMedianMs float64 `json:"request_to_exists_median_ms"`
	ReqP99Ms    float64 `json:"request_to_exists_p99_ms"`
	ReqMaxMs    float64 `json:"request_to_exists_max_ms"`
	// From starting the request to reading the 200.
	RoundTripMedianMs float64 `json:"request_to_200_median_ms"`
}

// mxClient POSTs to the started server's /mxdeliv as a peer's queue would.
type mxClient struct {
	url  string
	http *http.Client

	mu    sync.Mutex
	conns map[net.Conn]bool // the connections that carried requests since resetConns
}

// newMXClient makes a client for https://addr/mxdeliv speaking only HTTP version
// ("2" or "1.1"; 1.1 with keep-alive), with up to conc idle connections kept. The
// server's certificate is self-signed; see dialIMAP.
func newMXClient(addr, version string, conc int, timeout time.Duration) *mxClient {
	c := &mxClient{url: "https://" + addr + "/mxdeliv", conns: map[net.Conn]bool{}}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		TLSClientConfig:     &tls.Config{ServerName: "localhost", InsecureSkipVerify: true},
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: conc,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	if version == "2" {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	c.http = &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c
}

func (c *mxClient) close() { c.http.CloseIdleConnections() }

// resetConns starts counting the connections requests go over anew.
func (c *mxClient) resetConns() {
	c.mu.Lock()
	clear(c.conns)
	c.mu.Unlock()
}

// usedConns is how many connections carried requests since resetConns. (Go's HTTP/2
// client may dial one per request that waits at the start and then keep only one:
// those carried nothing.)
func (c *mxClient) usedConns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// post delivers one message and returns the HTTP status, the body's first line (the
// SMTP reply) and the protocol the answer came in.
func (c *mxClient) post(ctx context.Context, m peerMessage) (status int, reply, proto string, err error) {
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		c.mu.Lock()
		c.conns[info.Conn] = true
		c.mu.Unlock()
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(m.body))
	if err != nil {
		return 0, "", "", fmt.Errorf("mxdeliv request: %w", err)
	}
	// The spec's spelling, as coibox's own client sends them.
	req.Header["X-MAIL-FROM"] = []string{m.from}
	req.Header["X-MAIL-TO"] = []string{m.rcpt}
	req.Header.Set("Content-Type", "message/rfc822")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", "", fmt.Errorf("mxdeliv POST: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, "", resp.Proto, fmt.Errorf("mxdeliv answer: %w", err)
	}
	line, _, _ := strings.Cut(string(body), "\n")
	return resp.StatusCode, strings.TrimSpace(line), resp.Proto, nil
}

// dialPeerSMTP connects to port 25 from localIP as the peer's MTA would: EHLO,
// STARTTLS (a chatmail recipient requires it), EHLO again. With plain set it stays
// in cleartext, for the origin check that must refuse that.
func dialPeerSMTP(ctx context.Context, addr, localIP string, plain bool, timeout time.Duration) (*testutil.SMTPClient, error) {
	c, greet, err := testutil.DialSMTP(ctx, addr, testutil.SMTPDialOptions{LocalIP: localIP, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) (*testutil.SMTPClient, error) {
		c.Close()
		return nil, fmt.Errorf(format, args...)
	}
	if greet.Code != 220 {
		return fail("smtp greeting: %s", greet)
	}
	ehlo, err := c.Hello("mx." + peerDomain)
	if err != nil || ehlo.Code != 250 {
		return fail("smtp EHLO: %s %v", ehlo, err)
	}
	if plain {
		return c, nil
	}
	if !slices.ContainsFunc(ehlo.Lines, func(l string) bool { return strings.EqualFold(strings.TrimSpace(l), "STARTTLS") }) {
		return fail("smtp EHLO does not offer STARTTLS")
	}
	// A started server's certificate is self-signed; see dialIMAP.
	if r, err := c.StartTLS(&tls.Config{ServerName: "localhost", InsecureSkipVerify: true}); err != nil || r.Code != 220 {
		return fail("smtp STARTTLS: %s %v", r, err)
	}
	if r, err := c.Hello("mx." + peerDomain); err != nil || r.Code != 250 {
		return fail("smtp EHLO after STARTTLS: %s %v", r, err)
	}
	return c, nil
}

// peerIP is the loopback source address of port-25 connection i: not 127.0.0.1,
// which the server takes for a local tool and does not check (cmd/coibox authCheck),
// and one per connection, as distinct peers would have.
func peerIP(i int) string { return fmt.Sprintf("127.0.%d.%d", 40+i/250, i%250+1) }

// ingestSender delivers messages over one worker's connection; open makes one.
type ingestSender interface {
	// send delivers m: ok for a 250 or 200, else the refusal; err when the
	// connection failed (the worker then opens another).
	send(ctx context.Context, m peerMessage) (ok bool, reply string, err error)
	close()
}

type smtpSender struct{ c *testutil.SMTPClient }

func (s *smtpSender) send(_ context.Context, m peerMessage) (bool, string, error) {
	r, err := s.c.SendPipelined(m.from, []string{m.rcpt}, m.body)
	if err != nil {
		return false, "", err
	}
	return r.Code == 250, r.String(), nil
}

func (s *smtpSender) close() { _ = s.c.Quit() }

type mxSender struct {
	c     *mxClient
	proto *atomic.Value // the protocol of the answers
}

func (s *mxSender) send(ctx context.Context, m peerMessage) (bool, string, error) {
	status, reply, proto, err := s.c.post(ctx, m)
	if err != nil {
		return false, "", err
	}
	s.proto.Store(proto)
	return status == http.StatusOK, fmt.Sprintf("HTTP %d %s", status, reply), nil
}

func (s *mxSender) close() {}

// ingestTally is what ingestLoad counted, and what was read of the server around it;
// the rounds of one path add up.
type ingestTally struct {
	sent, acked, refused, errors int
	firstProb                    string
	elapsed                      time.Duration
	lat                          []time.Duration // of the acknowledged messages
	serverCPU, clientCPU         time.Duration
	stored                       int64
	conns                        int
}

func (t *ingestTally) add(o ingestTally) {
	t.sent, t.acked, t.refused, t.errors = t.sent+o.sent, t.acked+o.acked, t.refused+o.refused, t.errors+o.errors
	if t.firstProb == "" {
		t.firstProb = o.firstProb
	}
	t.elapsed += o.elapsed
	t.lat = append(t.lat, o.lat...)
	t.serverCPU, t.clientCPU = t.serverCPU+o.serverCPU, t.clientCPU+o.clientCPU
	t.stored += o.stored
	t.conns += o.conns
}

// report turns the tally into the path's figures.
func (t *ingestTally) report(path, protocol string) chatIngestRun {
	r := chatIngestRun{Path: path, Protocol: protocol, Connections: t.conns, Sent: t.sent, Acked: t.acked, Refused: t.refused, Errors: t.errors,
		FirstProb: t.firstProb, Seconds: t.elapsed.Seconds(), Stored: t.stored, StoredOK: t.stored == int64(t.acked)}
	if t.acked > 0 {
		r.PerSecond = float64(t.acked) / r.Seconds
		r.ServerCPUPerMsgMs = ms(t.serverCPU) / float64(t.acked)
		r.ClientCPUPerMsgMs = ms(t.clientCPU) / float64(t.acked)
	}
	lat := slices.Clone(t.lat)
	slices.Sort(lat)
	r.P50Ms, r.P99Ms = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99))
	return r
}

// ingestLoad sends msgs over conc workers, each with its own sender from open(w).
func ingestLoad(ctx context.Context, conc int, msgs []peerMessage, open func(w int) (ingestSender, error)) ingestTally {
	var (
		res  ingestTally
		next atomic.Int64
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	res.lat = make([]time.Duration, 0, len(msgs))
	problem := func(s string) {
		mu.Lock()
		if res.firstProb == "" {
			res.firstProb = s
		}
		mu.Unlock()
	}
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			var s ingestSender
			defer func() {
				if s != nil {
					s.close()
				}
			}()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(msgs) {
					return
				}
				if s == nil {
					var err error
					if s, err = open(w); err != nil {
						problem(err.Error())
						mu.Lock()
						res.sent++
						res.errors++
						mu.Unlock()
						continue
					}
				}
				t0 := time.Now()
				ok, reply, err := s.send(ctx, msgs[i])
				d := time.Since(t0)
				mu.Lock()
				res.sent++
				switch {
				case err != nil:
					res.errors++
				case ok:
					res.acked++
					res.lat = append(res.lat, d)
				default:
					res.refused++
				}
				mu.Unlock()
				if err != nil {
					problem(fmt.Sprintf("message %d: %v", i, err))
					s.close()
					s = nil
				} else if !ok {
					problem("refused: " + reply)
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// chatIngestTarget is where the ingest phase sends and what it reads of the server.
type chatIngestTarget struct {
	smtp    string // port 25
	mx      *mxClient
	pid     int
	dataDir string
}

// ingestOptions shape the ingest comparison.
type ingestOptions struct {
	messages, conc, size int
	// rounds alternate the paths: each round sends messages/rounds over each, in the
	// order port 25, /mxdeliv in even rounds and the reverse in odd ones, so that a
	// machine whose load drifts (a shared one) and the store's growth weigh on both.
	rounds  int
	timeout time.Duration
}

// chatIngestBench sends o.messages messages over port 25 with STARTTLS and as many
// over /mxdeliv, o.conc at a time, to rcpts in turn, in o.rounds alternating rounds,
// after the origin checks and an unmeasured warm-up of each path. Every round opens
// its connections within its time: its SMTP workers dial (and STARTTLS) anew, and the
// HTTPS client's idle connections are closed before each /mxdeliv round.
func chatIngestBench(ctx context.Context, tg chatIngestTarget, key *peerKey, rcpts []string, o ingestOptions) (*chatIngest, error) {
	n, conc := o.messages, o.conc
	rounds := max(1, min(o.rounds, n))
	warm := min(100, max(n/10, conc))
	msgs, err := peerMessages(key, key.signer, rcpts, 0, 2*(warm+n), o.size)
	if err != nil {
		return nil, err
	}
	res := &chatIngest{Messages: n, Concurrency: conc, Rounds: rounds, Size: o.size, MessageBytes: len(msgs[0].body), DKIM: key.alg, PeerDomain: peerDomain, Recipients: len(rcpts), Warmup: warm}
	if res.Origin, err = originChecks(ctx, tg, key, rcpts[0], o.size, o.timeout); err != nil {
		return nil, err
	}
	for _, c := range res.Origin {
		if !c.Refused {
			return res, fmt.Errorf("origin check not enforced: %s was answered %s", c.What, c.Reply)
		}
	}

	var smtpConns atomic.Int64
	openSMTP := func(w int) (ingestSender, error) {
		smtpConns.Add(1)
		c, err := dialPeerSMTP(ctx, tg.smtp, peerIP(w), false, o.timeout)
		if err != nil {
			return nil, err
		}
		return &smtpSender{c}, nil
	}
	var proto atomic.Value
	openMX := func(int) (ingestSender, error) { return &mxSender{c: tg.mx, proto: &proto}, nil }

	// Warm-up: each path once, unmeasured (connections, the DNS cache, the server's
	// caches and pools).
	for _, p := range []struct {
		msgs []peerMessage
		open func(int) (ingestSender, error)
	}{{msgs[:warm], openSMTP}, {msgs[warm : 2*warm], openMX}} {
		if r := ingestLoad(ctx, conc, p.msgs, p.open); r.acked != len(p.msgs) {
			return nil, fmt.Errorf("ingest warm-up: %d of %d acknowledged; first problem: %s", r.acked, len(p.msgs), r.firstProb)
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	msgs = msgs[2*warm:]

	// measure runs one round of one path and reads the server around it.
	measure := func(msgs []peerMessage, open func(int) (ingestSender, error), conns func() int) (ingestTally, error) {
		before, err := storedMessages(ctx, tg.dataDir)
		if err != nil {
			return ingestTally{}, err
		}
		cpu0, err := cpuTime(tg.pid)
		if err != nil {
			return ingestTally{}, err
		}
		self0, _ := cpuTime(os.Getpid())
		t := ingestLoad(ctx, conc, msgs, open)
		self1, _ := cpuTime(os.Getpid())
		cpu1, err := cpuTime(tg.pid)
		if err != nil {
			return t, err
		}
		t.serverCPU, t.clientCPU = cpu1-cpu0, self1-self0
		after, err := storedMessages(ctx, tg.dataDir)
		if err != nil {
			return t, err
		}
		t.stored = after - before
		t.conns = conns()
		return t, ctx.Err()
	}
	runSMTP := func(msgs []peerMessage) (ingestTally, error) {
		smtpConns.Store(0)
		return measure(msgs, openSMTP, func() int { return int(smtpConns.Load()) })
	}
	runMX := func(msgs []peerMessage) (ingestTally, error) {
		tg.mx.close()
		tg.mx.resetConns()
		return measure(msgs, openMX, tg.mx.usedConns)
	}

	var smtpTally, mxTally ingestTally
	smtpMsgs, mxMsgs := msgs[:n], msgs[n:]
	for r := range rounds {
		lo, hi := r*n/rounds, (r+1)*n/rounds
		steps := []func() error{
			func() error { t, err := runSMTP(smtpMsgs[lo:hi]); smtpTally.add(t); return err },
			func() error { t, err := runMX(mxMsgs[lo:hi]); mxTally.add(t); return err },
		}
		if r%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, err
			}
		}
	}
	res.SMTP = smtpTally.report("smtp", "ESMTP, STARTTLS, pipelined")
	mxProto, _ := proto.Load().(string)
	res.MXDeliv = mxTally.report("mxdeliv", mxProto)
	if res.SMTP.PerSecond > 0 {
		res.Ratio = res.MXDeliv.PerSecond / res.SMTP.PerSecond
	}
	if res.SMTP.ServerCPUPerMsgMs > 0 {
		res.CPURatio = res.MXDeliv.ServerCPUPerMsgMs / res.SMTP.ServerCPUPerMsgMs
	}
	return res, nil
}

// originChecks sends three messages the server must refuse, each to rcpt: over
// port 25 with STARTTLS but signed with a key that is not the published one; over
// port 25 without STARTTLS, well signed; over /mxdeliv with the wrong key.
func originChecks(ctx context.Context, tg chatIngestTarget, key *peerKey, rcpt string, size int, timeout time.Duration) ([]originCheck, error) {
	good, err := peerMessages(key, key.signer, []string{rcpt}, 1_000_000, 1, size)
	if err != nil {
		return nil, err
	}
	bad, err := peerMessages(key, key.forged, []string{rcpt}, 1_000_001, 1, size)
	if err != nil {
		return nil, err
	}
	forged := bad[0]
	var out []originCheck
	viaSMTP := func(what string, m peerMessage, plain bool, ip string) error {
		c, err := dialPeerSMTP(ctx, tg.smtp, ip, plain, timeout)
		if err != nil {
			return err
		}
		defer func() { _ = c.Quit() }()
		r, err := c.SendPipelined(m.from, []string{m.rcpt}, m.body)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, originCheck{What: what, Reply: r.String(), Refused: r.Code/100 != 2})
		return nil
	}
	if err := viaSMTP("port 25 with STARTTLS, DKIM signature by an unpublished key", forged, false, peerIP(240)); err != nil {
		return nil, err
	}
	if err := viaSMTP("port 25 without STARTTLS, valid DKIM signature", good[0], true, peerIP(241)); err != nil {
		return nil, err
	}
	status, reply, _, err := tg.mx.post(ctx, forged)
	if err != nil {
		return nil, err
	}
	out = append(out, originCheck{What: "/mxdeliv, DKIM signature by an unpublished key", Reply: fmt.Sprintf("HTTP %d %s", status, reply), Refused: status != http.StatusOK})
	return out, nil
}

// chatMXLatencyBench POSTs k messages from the peer to /mxdeliv, one at a time,
// while rcpt idles on its INBOX, and times each from the client's reading the 200 to
// the idling client's reading "* N EXISTS" (and from the request's start). One
// message before them, not counted, warms the connection and the DNS cache.
func chatMXLatencyBench(ctx context.Context, imapsAddr string, mx *mxClient, key *peerKey, rcpt chatAccount, k, size int, timeout time.Duration) (*chatMXLatency, error) {
	msgs, err := peerMessages(key, key.signer, []string{rcpt.user}, 2_000_000, k+1, size)
	if err != nil {
		return nil, err
	}
	ic, err := dialIMAP(ctx, imapsAddr, "", timeout)
	if err != nil {
		return nil, err
	}
	defer ic.Close()
	if err := ic.login(rcpt.user, rcpt.password); err != nil {
		return nil, err
	}
	exists, _, err := ic.selectBox("INBOX")
	if err != nil {
		return nil, err
	}
	if err := ic.idle(); err != nil {
		return nil, err
	}
	events := make(chan existsEvent, k+16)
	watched := make(chan error, 1)
	go func() { watched <- ic.watchExists(events) }()

	res := &chatMXLatency{MessageBytes: len(msgs[1].body)}
	lat := make([]time.Duration, 0, k)
	reqLat := make([]time.Duration, 0, k)
	rtt := make([]time.Duration, 0, k)
	for j, m := range msgs {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		t0 := time.Now()
		status, reply, proto, err := mx.post(ctx, m)
		acked := time.Now()
		if err != nil {
			return nil, fmt.Errorf("mxdeliv message %d: %w", j, err)
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("mxdeliv message %d: HTTP %d %s", j, status, reply)
		}
		res.Protocol = proto
		ev, err := waitExists(ctx, events, watched, exists+j+1, timeout)
		if err != nil {
			return nil, err
		}
		if j == 0 {
			continue // the warm-up
		}
		reqLat = append(reqLat, ev.at.Sub(t0))
		rtt = append(rtt, acked.Sub(t0))
		d := ev.at.Sub(acked)
		if d < 0 {
			res.Early++
			d = 0
		}
		lat = append(lat, d)
	}
	for _, s := range [][]time.Duration{lat, reqLat, rtt} {
		slices.Sort(s)
	}
	res.Samples = len(lat)
	res.MedianMs, res.P99Ms, res.MaxMs = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99)), ms(lat[len(lat)-1])
	res.ReqMedianMs, res.ReqP99Ms, res.ReqMaxMs = ms(percentile(reqLat, 0.50)), ms(percentile(reqLat, 0.99)), ms(reqLat[len(reqLat)-1])
	res.RoundTripMedianMs = ms(percentile(rtt, 0.50))

	_ = ic.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(ic.conn, "DONE\r\n"); err != nil {
		return nil, fmt.Errorf("send DONE: %w", err)
	}
	select {
	case err := <-watched:
		if err != nil {
			return nil, fmt.Errorf("end IDLE: %w", err)
		}
	case <-time.After(timeout):
		return nil, fmt.Errorf("IDLE not ended within %v of DONE", timeout)
	}
	_, _ = ic.cmd(nil, "LOGOUT")
	return res, nil
}

// waitExists waits for the idling connection to report "* want EXISTS" (or more).
func waitExists(ctx context.Context, events <-chan existsEvent, watched <-chan error, want int, timeout time.Duration) (existsEvent, error) {
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-events:
			if ev.n >= want {
				return ev, nil
			}
			// a late duplicate; not expected, harmless
		case err := <-watched:
			return existsEvent{}, fmt.Errorf("idling connection ended: %v", err)
		case <-deadline:
			return existsEvent{}, fmt.Errorf("no * %d EXISTS within %v", want, timeout)
		case <-ctx.Done():
			return existsEvent{}, ctx.Err()
		}
	}
}
