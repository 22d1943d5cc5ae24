package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/internal/testutil"
	"github.com/miekg/dns"
)

const chatUsage = `usage: coibench chat [flags]

Measures coibox as a chatmail relay. It builds cmd/coibox (or takes -coibox) and
starts it on free 127.0.0.1 ports with a temporary data directory and a chatmail
domain, ` + chatDomain + ` (domain add --chatmail), whose send rate limit and resource
guard are off and whose per-network account creation limit is raised, so that neither
the limiter nor the guard is measured; it also listens on HTTPS (listen.https, the
self-signed certificate), which carries /mxdeliv. Then:
  - first logins: -logins IMAPS connections at once, each logging in (LOGIN) with a new
    random 9-character address and a 16-character password, which makes the account;
    each login is timed from sending LOGIN to its tagged OK, and also from before the
    TLS dial; the server's RSS before the phase and its peak (VmHWM) during it are
    read from /proc. Every login must succeed.
  - chat latency: of two of those accounts, one idles on its INBOX while the other
    submits -messages messages of -size bytes one at a time on the submissions port
    (implicit TLS, AUTH PLAIN), each timed from the 250 after DATA to the idling
    client reading "* N EXISTS", and also from writing DATA's final dot (an upper
    bound that takes in the server's commit, which both ends of the first figure
    follow). The messages are PGP/MIME as Delta Chat sends them
    (one PKESK and one SEIPD packet of random bytes), so that the server's encryption
    check passes them; afterwards the recipient fetches their Subject fields, which
    the server must have replaced with "[...]", to show that the chatmail path ran.
  - ingest from another server: the benchmark plays a chatmail server of its own
    domain, ` + peerDomain + ` (not served by the started one), with a DKIM key (-dkim)
    made at start and published in the benchmark's stub DNS. It sends -ingest
    messages of -size bytes, encrypted-shaped as above and DKIM-signed with d= the
    From domain, to chatmail accounts of the first logins in turn, -ingest-conc at
    once, over port 25 (each worker one connection from its own 127.0.x.y, EHLO,
    STARTTLS, pipelined transactions, all its messages of the round on it) and over
    HTTPS POST /mxdeliv (listen.https, self-signed; HTTP version -mxdeliv-http, its
    connections kept alive), in -ingest-rounds rounds that alternate the paths
    (port 25 first in even rounds, /mxdeliv first in odd ones), so that the drifting
    load of a shared machine and the store's growth weigh on both. Each round opens
    its connections (TLS handshakes included) within its time. It reports msg/s of
    each, the rounds added up and confirmed by counting the store, and their ratio.
    Before, three messages the server must refuse (port 25 with a signature by an
    unpublished key, port 25 without STARTTLS, /mxdeliv with the unpublished key)
    show that the origin checks the ingest pays for are on; then each path is
    warmed up unmeasured.
  - cross-host latency: the first account idles on its INBOX while the benchmark,
    as the other server, POSTs -mx-messages messages to /mxdeliv one at a time,
    each timed from reading the 200 to the idling client's reading "* N EXISTS",
    and also from the request's start.
  - idle connections: -conns connections on chatmail accounts (-conns-per-account
    on each account, made by first login), logged in, INBOX selected, idling; the
    server's RSS growth per connection, read from /proc, and its open files. The
    server is restarted after the accounts are made and before the measurement (its
    data stays), so that the heap the earlier phases left behind cannot absorb the
    connections' memory; the restarted server's one password check per account
    (argon2) falls within the phase, which if anything raises the figure. All come
    from 127.0.0.1: the config's imap_connections_per_ip is -conns + 100 and
    imap_connections_per_account -conns-per-account + 10 (at least 100).
The client is a minimal one that reads responses to their end without decoding them,
so the figures are the server's.

Flags:
`

// chatFlags are the chat benchmark's settings.
type chatFlags struct {
	bin      string
	logins   int
	messages int
	size     string
	jsonOut  bool
	keep     bool
	verbose  bool
	logLevel string
	timeout  time.Duration

	ingest       int
	ingestConc   int
	ingestRounds int
	mxHTTP       string
	dkimAlg      string
	mxMessages   int
	conns        int
	perAccount   int
}

func (f *chatFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.bin, "coibox", "", "coibox `binary` to start (default: build github.com/coibox/coibox/cmd/coibox)")
	fs.IntVar(&f.logins, "logins", 50, "concurrent first logins, each making a new account (at least 2)")
	fs.IntVar(&f.messages, "messages", 300, "encrypted messages submitted one at a time for the chat latency (0: skip)")
	fs.StringVar(&f.size, "size", "4KB", "size of each encrypted message")
	fs.BoolVar(&f.jsonOut, "json", false, "print the results as JSON instead of a table")
	fs.BoolVar(&f.keep, "keep", false, "keep the started server's temporary directory (data, config, log)")
	fs.BoolVar(&f.verbose, "v", false, "copy the started server's log to stderr")
	fs.StringVar(&f.logLevel, "log-level", "info", "the started server's log_level")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "timeout of each IMAP command, SMTP round trip and HTTP request")
	fs.IntVar(&f.ingest, "ingest", 2000, "messages from the other server over port 25 and as many over /mxdeliv, for the ingest comparison (0: skip)")
	fs.IntVar(&f.ingestConc, "ingest-conc", 16, "messages in flight at once in the ingest comparison (SMTP connections, HTTP requests)")
	fs.IntVar(&f.ingestRounds, "ingest-rounds", 4, "rounds the ingest comparison alternates the two paths in (port 25 first in even rounds, /mxdeliv in odd ones)")
	fs.StringVar(&f.mxHTTP, "mxdeliv-http", "2", "HTTP `version` of the /mxdeliv client: 2 (one multiplexed connection, as coibox's own client) or 1.1 (keep-alive, one connection per request in flight)")
	fs.StringVar(&f.dkimAlg, "dkim", "ed25519", "`type` of the other server's DKIM key: ed25519 or rsa (2048 bits)")
	fs.IntVar(&f.mxMessages, "mx-messages", 300, "messages POSTed to /mxdeliv one at a time for the cross-host latency (0: skip)")
	fs.IntVar(&f.conns, "conns", 10000, "idling IMAP connections on chatmail accounts for the memory per connection (0: skip)")
	fs.IntVar(&f.perAccount, "conns-per-account", 100, "idling connections per account (the accounts are made by first login)")
}

// chatLogins is what the first-login phase measured.
type chatLogins struct {
	Logins     int    `json:"logins"`
	Succeeded  int    `json:"succeeded"`
	FirstError string `json:"first_error,omitempty"`
	// LOGIN sent to its tagged OK.
	LoginP50Ms float64 `json:"login_p50_ms"`
	LoginP99Ms float64 `json:"login_p99_ms"`
	LoginMaxMs float64 `json:"login_max_ms"`
	// From before the TCP connect (TLS handshake and greeting included) to the OK.
	DialLoginP50Ms float64 `json:"dial_login_p50_ms"`
	DialLoginP99Ms float64 `json:"dial_login_p99_ms"`
	DialLoginMaxMs float64 `json:"dial_login_max_ms"`
	WallMs         float64 `json:"wall_ms"` // from the first dial to the last answer
	RSSBefore      int64   `json:"rss_before_bytes"`
	PeakRSS        int64   `json:"peak_rss_bytes"`
	// PeakReset tells whether VmHWM was reset before the phase; if not, PeakRSS is the
	// peak since the server started (which did nothing else before).
	PeakReset bool `json:"peak_reset"`
}

// chatLatency is the submission-to-IDLE latency over Samples messages.
type chatLatency struct {
	Samples      int     `json:"samples"`
	MessageBytes int     `json:"message_bytes"` // of the first message; the others are within a few bytes
	Pipelining   bool    `json:"pipelining"`
	MedianMs     float64 `json:"median_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	// Early counts EXISTS read before the 250 (both follow the same commit); they
	// count as 0.
	Early int `json:"exists_before_250"`
	// From writing DATA's final dot to reading the EXISTS: an upper bound that takes
	// in the server's whole handling of the message, commit included, which the figures
	// above (both ends after the commit) leave out.
	DotMedianMs float64 `json:"dot_to_exists_median_ms"`
	DotP99Ms    float64 `json:"dot_to_exists_p99_ms"`
	DotMaxMs    float64 `json:"dot_to_exists_max_ms"`
	// Fetched is how many messages the recipient's INBOX held afterwards, Scrubbed how
	// many of them had "Subject: [...]".
	Fetched  int `json:"fetched"`
	Scrubbed int `json:"subject_scrubbed"`
}

// chatReport is everything one `coibench chat` measured.
type chatReport struct {
	Target      string         `json:"target"`
	Submissions string         `json:"submissions_target"`
	Domain      string         `json:"domain"`
	ServerPID   int            `json:"server_pid"`
	CPUs        int            `json:"cpus"`
	HTTPS       string         `json:"https_target"`
	FirstLogins *chatLogins    `json:"first_logins"`
	Latency     *chatLatency   `json:"chat_latency,omitempty"`
	Ingest      *chatIngest    `json:"ingest,omitempty"`
	MXLatency   *chatMXLatency `json:"mxdeliv_latency,omitempty"`
	IdleConns   *chatIdleConns `json:"idle_conns,omitempty"`
	Targets     []targetCheck  `json:"targets,omitempty"`
}

// chatAccount is an account a first login made.
type chatAccount struct{ user, password string }

func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chat", chatUsage, stderr)
	var f chatFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	size, err := config.ParseSize(f.size)
	if err != nil || size <= 0 || f.logins < 2 || f.messages < 0 || f.timeout <= 0 {
		fmt.Fprintln(stderr, "coibench chat: -size must be a size, -logins at least 2, -messages not negative, -timeout positive")
		return errUsage
	}
	if f.ingest < 0 || f.ingestConc < 1 || f.ingestRounds < 1 || f.mxMessages < 0 || f.conns < 0 || f.perAccount < 1 ||
		(f.mxHTTP != "2" && f.mxHTTP != "1.1") || (f.dkimAlg != "ed25519" && f.dkimAlg != "rsa") {
		fmt.Fprintln(stderr, "coibench chat: -ingest, -mx-messages and -conns must not be negative, -ingest-conc, -ingest-rounds and -conns-per-account positive, -mxdeliv-http 2 or 1.1, -dkim ed25519 or rsa")
		return errUsage
	}

	key, err := newPeerKey(f.dkimAlg)
	if err != nil {
		return err
	}
	opts := serverOptions{bin: f.bin, keep: f.keep, logLevel: f.logLevel, log: verboseLog(f.verbose, stderr), chatmail: true,
		dns: []dns.RR{key.record}}
	if f.conns > 0 {
		// Every idling connection comes from 127.0.0.1, perAccount on each account.
		opts.imapPerIP, opts.imapPerAccount = f.conns+100, max(100, f.perAccount+10)
	}
	srv, err := startServer(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Close(); err != nil {
			fmt.Fprintf(stderr, "coibench chat: stop server: %v\n", err)
		}
	}()
	rep := &chatReport{Target: srv.addr.IMAPS, Submissions: srv.addr.Submissions, HTTPS: srv.addr.HTTPS, Domain: chatDomain, ServerPID: srv.proc.Pid(), CPUs: runtime.NumCPU()}
	progress := func(format string, args ...any) {
		fmt.Fprintf(stderr, "coibench chat: "+format+"\n", args...)
	}

	var accounts []chatAccount
	rep.FirstLogins, accounts, err = firstLogins(ctx, srv.addr.IMAPS, rep.ServerPID, f.logins, f.timeout)
	if err != nil {
		return err
	}
	l := rep.FirstLogins
	progress("%d of %d first logins succeeded in %.2f s: LOGIN p99 %.0f ms, with the TLS dial p99 %.0f ms; peak RSS %.1f MB",
		l.Succeeded, l.Logins, l.WallMs/1000, l.LoginP99Ms, l.DialLoginP99Ms, mb(l.PeakRSS))

	if f.messages > 0 && len(accounts) >= 2 {
		rep.Latency, err = chatIdleLatency(ctx, srv.addr.IMAPS, srv.addr.Submissions, accounts[0], accounts[1], f.messages, int(size), f.timeout)
		if err != nil {
			return err
		}
		progress("chat latency over %d encrypted messages: median %.2f ms, p99 %.2f ms", rep.Latency.Samples, rep.Latency.MedianMs, rep.Latency.P99Ms)
	}

	var mx *mxClient
	if f.ingest > 0 || f.mxMessages > 0 {
		mx = newMXClient(srv.addr.HTTPS, f.mxHTTP, f.ingestConc, f.timeout)
		defer mx.close()
	}
	if f.ingest > 0 && len(accounts) > 0 {
		// The accounts of the latency phases stay out of it, when there are others.
		rcpts := accounts
		if len(rcpts) > 2 {
			rcpts = rcpts[2:]
		}
		var to []string
		for _, a := range rcpts[:min(len(rcpts), 10)] {
			to = append(to, a.user)
		}
		tg := chatIngestTarget{smtp: srv.addr.SMTP, mx: mx, pid: rep.ServerPID, dataDir: srv.dataDir}
		rep.Ingest, err = chatIngestBench(ctx, tg, key, to, ingestOptions{messages: f.ingest, conc: f.ingestConc, size: int(size), rounds: f.ingestRounds, timeout: f.timeout})
		if err != nil {
			return err
		}
		in := rep.Ingest
		progress("ingest of %d messages at concurrency %d: port 25 %.0f msg/s, /mxdeliv (%s) %.0f msg/s, ratio %.2f",
			in.Messages, in.Concurrency, in.SMTP.PerSecond, in.MXDeliv.Protocol, in.MXDeliv.PerSecond, in.Ratio)
	}
	if f.mxMessages > 0 && len(accounts) > 0 {
		rep.MXLatency, err = chatMXLatencyBench(ctx, srv.addr.IMAPS, mx, key, accounts[0], f.mxMessages, int(size), f.timeout)
		if err != nil {
			return err
		}
		progress("/mxdeliv latency over %d messages: 200 to EXISTS median %.2f ms, p99 %.2f ms", rep.MXLatency.Samples, rep.MXLatency.MedianMs, rep.MXLatency.P99Ms)
	}
	if f.conns > 0 {
		rep.IdleConns, err = chatIdleMemory(ctx, srv, f.conns, f.perAccount, f.timeout, progress)
		if err != nil {
			return err
		}
		c := rep.IdleConns
		progress("%d idling connections on %d chatmail accounts: %.1f KB RSS each", c.Opened, c.Accounts, c.PerConnKB)
	}

	rep.Targets = checkChatTargets(rep)
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = printChatTable(stdout, rep)
	}
	if err != nil {
		return err
	}
	// A failed login or an unscrubbed message is a bug, not a slow run: make it fail
	// scripts that run this.
	if l.Succeeded != l.Logins {
		return fmt.Errorf("%d of %d first logins failed; first: %s", l.Logins-l.Succeeded, l.Logins, l.FirstError)
	}
	if c := rep.Latency; c != nil && (c.Scrubbed != c.Samples || c.Fetched != c.Samples) {
		return fmt.Errorf("the recipient's INBOX holds %d messages, %d with Subject: [...]; want %d and %d", c.Fetched, c.Scrubbed, c.Samples, c.Samples)
	}
	if in := rep.Ingest; in != nil {
		for _, r := range []chatIngestRun{in.SMTP, in.MXDeliv} {
			if r.Acked != r.Sent || !r.StoredOK {
				return fmt.Errorf("%s ingest: %d of %d acknowledged, %d stored; first problem: %s", r.Path, r.Acked, r.Sent, r.Stored, r.FirstProb)
			}
		}
	}
	if c := rep.IdleConns; c != nil && c.Opened != c.Conns {
		return fmt.Errorf("%d of %d idling connections opened: %s", c.Opened, c.Conns, c.FirstError)
	}
	return nil
}

// newChatAccounts makes n distinct random addresses on chatDomain with 9-character
// local parts of [a-z0-9] (what the domain's profile takes, as Delta Chat invents
// them) and 16-character passwords.
func newChatAccounts(n int) []chatAccount {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	pick := func(k int, from string) string {
		b := make([]byte, k)
		for i := range b {
			b[i] = from[rand.IntN(len(from))]
		}
		return string(b)
	}
	seen := map[string]bool{}
	out := make([]chatAccount, 0, n)
	for len(out) < n {
		user := pick(9, alnum) + "@" + chatDomain
		if seen[user] {
			continue
		}
		seen[user] = true
		out = append(out, chatAccount{user: user, password: pick(16, alnum+"ABCDEFGHIJKLMNOPQRSTUVWXYZ")})
	}
	return out
}

// firstLogins opens n IMAPS connections at once, each logging in with a new address,
// which makes its account, and reads the server's memory around them. It returns the
// accounts whose logins succeeded; failed logins are counted in the report, not
// returned as the error.
func firstLogins(ctx context.Context, addr string, pid, n int, timeout time.Duration) (*chatLogins, []chatAccount, error) {
	res := &chatLogins{Logins: n}
	before, err := settledMemory(ctx, pid)
	if err != nil {
		return nil, nil, err
	}
	res.RSSBefore = before.RSS
	res.PeakReset = resetPeak(pid) == nil

	accounts := newChatAccounts(n)
	type result struct {
		conn        *imapConn
		login, dial time.Duration
		err         error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := &results[i]
			<-start
			t0 := time.Now()
			c, err := dialIMAP(ctx, addr, "", timeout)
			if err != nil {
				r.err = err
				return
			}
			r.conn = c
			t1 := time.Now()
			if err := c.login(accounts[i].user, accounts[i].password); err != nil {
				r.err = err
				return
			}
			t2 := time.Now()
			r.login, r.dial = t2.Sub(t1), t2.Sub(t0)
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.WallMs = ms(time.Since(t0))
	// The peak is read while every connection is still open.
	mem, err := readMemory(pid)
	for _, r := range results {
		if r.conn != nil {
			_, _ = r.conn.cmd(nil, "LOGOUT")
			r.conn.Close()
		}
	}
	if err != nil {
		return nil, nil, err
	}
	res.PeakRSS = mem.Peak
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}

	var logins, dials []time.Duration
	var ok []chatAccount
	for i, r := range results {
		if r.err != nil {
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("%s: %v", accounts[i].user, r.err)
			}
			continue
		}
		logins, dials = append(logins, r.login), append(dials, r.dial)
		ok = append(ok, accounts[i])
	}
	res.Succeeded = len(ok)
	if len(ok) > 0 {
		slices.Sort(logins)
		slices.Sort(dials)
		res.LoginP50Ms, res.LoginP99Ms, res.LoginMaxMs = ms(percentile(logins, 0.5)), ms(percentile(logins, 0.99)), ms(logins[len(logins)-1])
		res.DialLoginP50Ms, res.DialLoginP99Ms, res.DialLoginMaxMs = ms(percentile(dials, 0.5)), ms(percentile(dials, 0.99)), ms(dials[len(dials)-1])
	}
	return res, ok, nil
}

// chatIdleLatency submits k encrypted messages from sender to rcpt over one
// submissions connection, one at a time, while rcpt idles on its INBOX, and times each
// from the sender's reading the 250 after DATA to the idling client's reading
// "* N EXISTS". Both clients are this process, so one monotonic clock. Then the
// recipient ends the IDLE and fetches the messages' Subject fields.
func chatIdleLatency(ctx context.Context, imapsAddr, submissionsAddr string, sender, rcpt chatAccount, k, size int, timeout time.Duration) (*chatLatency, error) {
	ic, err := openIMAP(ctx, imapTarget{imap: imapsAddr, user: rcpt.user, password: rcpt.password}, "", timeout)
	if err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	defer ic.Close()
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

	// Made before the clock runs; each differs (boundary, Message-ID, packets).
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	msgs := make([][]byte, k)
	for j := range msgs {
		msgs[j] = append(chatMessage(rng, sender.user, rcpt.user, j+1, size), ".\r\n"...)
	}

	sc, greet, err := testutil.DialSMTP(ctx, submissionsAddr, testutil.SMTPDialOptions{Timeout: timeout,
		// A started server's certificate is self-signed; see dialIMAP.
		TLS: &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}})
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	if greet.Code != 220 {
		return nil, fmt.Errorf("submission greeting: %s", greet)
	}
	ehlo, err := sc.Hello("bench-client")
	if err != nil || ehlo.Code != 250 {
		return nil, fmt.Errorf("submission EHLO: %s %v", ehlo, err)
	}
	res := &chatLatency{MessageBytes: len(msgs[0]) - len(".\r\n")}
	for _, line := range ehlo.Lines {
		if strings.EqualFold(strings.TrimSpace(line), "PIPELINING") {
			res.Pipelining = true
		}
	}
	if r, err := sc.AuthPlain(sender.user, sender.password); err != nil || r.Code != 235 {
		return nil, fmt.Errorf("submission AUTH PLAIN: %s %v", r, err)
	}

	lat := make([]time.Duration, 0, k)
	dotLat := make([]time.Duration, 0, k)
	for j, msg := range msgs {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		dot, r, err := submitTimed(sc, res.Pipelining, sender.user, rcpt.user, msg, timeout)
		acked := time.Now()
		if err != nil {
			return nil, fmt.Errorf("chat message %d: %w", j+1, err)
		}
		if r.Code != 250 {
			return nil, fmt.Errorf("chat message %d: %s", j+1, r)
		}
		want := exists + j + 1
		for got := false; !got; {
			select {
			case ev := <-events:
				if ev.n < want {
					continue // a late duplicate; not expected, harmless
				}
				got = true
				dotLat = append(dotLat, ev.at.Sub(dot))
				d := ev.at.Sub(acked)
				if d < 0 {
					res.Early++
					d = 0
				}
				lat = append(lat, d)
			case err := <-watched:
				return nil, fmt.Errorf("idling connection ended: %v", err)
			case <-time.After(timeout):
				return nil, fmt.Errorf("no * %d EXISTS within %v of the 250", want, timeout)
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	_ = sc.Quit()
	slices.Sort(lat)
	res.Samples = len(lat)
	res.MedianMs = ms(percentile(lat, 0.50))
	res.P99Ms = ms(percentile(lat, 0.99))
	res.MaxMs = ms(lat[len(lat)-1])
	slices.Sort(dotLat)
	res.DotMedianMs, res.DotP99Ms, res.DotMaxMs = ms(percentile(dotLat, 0.50)), ms(percentile(dotLat, 0.99)), ms(dotLat[len(dotLat)-1])

	// End the IDLE; the watcher returns at its tagged OK, and the connection is the
	// benchmark's again.
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
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if res.Fetched, res.Scrubbed, err = fetchSubjects(ic); err != nil {
		return nil, err
	}
	res.Fetched -= exists // a new account's INBOX starts empty; just in case
	_, _ = ic.cmd(nil, "LOGOUT")
	return res, nil
}

// submitTimed runs one transaction on a logged-in submission connection (MAIL FROM,
// RCPT TO and DATA in one write when the server pipelines) and returns when it wrote
// the message's final dot and the reply to it. msg must be in wire form (CRLF line
// ends, no line starting with a dot), as chatMessage makes it; the dot goes in the
// same write, so that the time is that of the end of DATA.
func submitTimed(sc *testutil.SMTPClient, pipelining bool, from, rcpt string, msg []byte, timeout time.Duration) (dot time.Time, r testutil.SMTPReply, err error) {
	conn := sc.Conn()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	cmds := []string{"MAIL FROM:<" + from + ">", "RCPT TO:<" + rcpt + ">", "DATA"}
	if pipelining {
		if _, err := io.WriteString(conn, strings.Join(cmds, "\r\n")+"\r\n"); err != nil {
			return dot, r, fmt.Errorf("send commands: %w", err)
		}
	}
	for i, cmd := range cmds {
		if pipelining {
			r, err = sc.ReadReply()
		} else {
			r, err = sc.Cmd("%s", cmd)
		}
		if err != nil {
			return dot, r, err
		}
		if want := []int{250, 250, 354}[i]; r.Code != want && !(i == 1 && r.Code == 251) {
			if pipelining {
				// Read what the rest of the pipelined commands were answered, so that the
				// connection stays in step for the error report; the transaction failed.
				for range cmds[i+1:] {
					_, _ = sc.ReadReply()
				}
			}
			return dot, r, nil
		}
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	dot = time.Now()
	if _, err := conn.Write(msg); err != nil {
		return dot, r, fmt.Errorf("send message: %w", err)
	}
	r, err = sc.ReadReply()
	return dot, r, err
}

// fetchSubjects fetches every INBOX message's Subject field in one UID FETCH and counts
// the messages and those whose Subject is the chatmail placeholder "[...]".
func fetchSubjects(c *imapConn) (fetched, scrubbed int, err error) {
	_, err = c.command(func(line []byte) {
		if bytes.Contains(line, []byte(" FETCH ")) {
			fetched++
		}
	}, func(lit []byte) {
		if string(bytes.TrimSpace(lit)) == "Subject: [...]" {
			scrubbed++
		}
	}, "UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	return fetched, scrubbed, err
}

// The goals coibox's chat is measured against (issue 9, "Speed and memory").
const (
	goalFirstLoginP99Ms  = 2000.0
	goalFirstLoginPeakMB = 150.0
	goalChatMedianMs     = 1.0
	goalMXIngestRatio    = 1.0 // /mxdeliv msg/s at least port 25's
	goalMXMedianMs       = 5.0
	goalChatConnKB       = 50.0
)

func checkChatTargets(rep *chatReport) []targetCheck {
	var out []targetCheck
	if l := rep.FirstLogins; l != nil {
		at := fmt.Sprintf(", %d at once", l.Logins)
		out = append(out,
			targetCheck{What: "first logins (new accounts) that succeeded" + at, Goal: fmt.Sprintf("all %d", l.Logins), Value: float64(l.Succeeded), Unit: "logins", Met: l.Succeeded == l.Logins},
			targetCheck{What: "first LOGIN to tagged OK, p99" + at, Goal: fmt.Sprintf("< %g ms", goalFirstLoginP99Ms), Value: l.LoginP99Ms, Unit: "ms", Met: l.Succeeded > 0 && l.LoginP99Ms < goalFirstLoginP99Ms},
			targetCheck{What: "TLS dial + first LOGIN, p99" + at, Goal: fmt.Sprintf("< %g ms", goalFirstLoginP99Ms), Value: l.DialLoginP99Ms, Unit: "ms", Met: l.Succeeded > 0 && l.DialLoginP99Ms < goalFirstLoginP99Ms},
			targetCheck{What: "server peak RSS during the first logins", Goal: fmt.Sprintf("< %g MB", goalFirstLoginPeakMB), Value: mb(l.PeakRSS), Unit: "MB", Met: mb(l.PeakRSS) < goalFirstLoginPeakMB})
	}
	if c := rep.Latency; c != nil {
		out = append(out, targetCheck{What: "submission 250 to * EXISTS at the recipient's IDLE, median", Goal: fmt.Sprintf("≤ %g ms", goalChatMedianMs), Value: c.MedianMs, Unit: "ms", Met: c.MedianMs <= goalChatMedianMs})
	}
	if in := rep.Ingest; in != nil {
		ok := in.SMTP.StoredOK && in.MXDeliv.StoredOK && in.SMTP.Acked == in.SMTP.Sent && in.MXDeliv.Acked == in.MXDeliv.Sent
		out = append(out, targetCheck{What: fmt.Sprintf("/mxdeliv msg/s ÷ port 25 (STARTTLS) msg/s, %s at concurrency %d", humanBytes(int64(in.Size)), in.Concurrency),
			Goal: fmt.Sprintf("≥ %g", goalMXIngestRatio), Value: in.Ratio, Unit: "×", Met: ok && in.Ratio >= goalMXIngestRatio})
	}
	if c := rep.MXLatency; c != nil {
		out = append(out, targetCheck{What: "/mxdeliv 200 to * EXISTS at the recipient's IDLE, median", Goal: fmt.Sprintf("≤ %g ms", goalMXMedianMs), Value: c.MedianMs, Unit: "ms", Met: c.MedianMs <= goalMXMedianMs})
	}
	if c := rep.IdleConns; c != nil {
		out = append(out, targetCheck{What: fmt.Sprintf("server RSS per idling chatmail connection, %d open", c.Opened), Goal: fmt.Sprintf("< %g KB", goalChatConnKB),
			Value: c.PerConnKB, Unit: "KB", Met: c.Opened == c.Conns && c.Opened > 0 && c.PerConnKB < goalChatConnKB})
	}
	return out
}

func printChatTable(w io.Writer, rep *chatReport) error {
	fmt.Fprintf(w, "coibox chat on %s (IMAPS %s, submissions %s; server pid %d, %d CPUs shared with the client)\n\n",
		rep.Domain, rep.Target, rep.Submissions, rep.ServerPID, rep.CPUs)
	if l := rep.FirstLogins; l != nil {
		fmt.Fprintf(w, "first logins: %d at once, each making a new account: %d succeeded, all answered in %.2f s\n", l.Logins, l.Succeeded, l.WallMs/1000)
		if l.FirstError != "" {
			fmt.Fprintf(w, "first failure: %s\n", l.FirstError)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\tp50 ms\tp99 ms\tmax ms\t")
		fmt.Fprintf(tw, "LOGIN to tagged OK\t%.1f\t%.1f\t%.1f\t\n", l.LoginP50Ms, l.LoginP99Ms, l.LoginMaxMs)
		fmt.Fprintf(tw, "TLS dial + LOGIN\t%.1f\t%.1f\t%.1f\t\n", l.DialLoginP50Ms, l.DialLoginP99Ms, l.DialLoginMaxMs)
		if err := tw.Flush(); err != nil {
			return err
		}
		peak := "during the phase (VmHWM reset before it)"
		if !l.PeakReset {
			peak = "since the server started (VmHWM could not be reset)"
		}
		fmt.Fprintf(w, "server RSS %.1f MB before, peak %.1f MB %s\n", mb(l.RSSBefore), mb(l.PeakRSS), peak)
	}
	if c := rep.Latency; c != nil {
		how := "without pipelining"
		if c.Pipelining {
			how = "pipelined"
		}
		fmt.Fprintf(w, "\nchat: %d encrypted messages of %d bytes submitted one at a time on the submissions port (%s); 250 after DATA to * N EXISTS at the recipient's IDLE: median %.2f ms, p99 %.2f ms, max %.2f ms (%d EXISTS read before the 250, counted as 0)\n",
			c.Samples, c.MessageBytes, how, c.MedianMs, c.P99Ms, c.MaxMs, c.Early)
		fmt.Fprintf(w, "from writing DATA's final dot to * N EXISTS (the server's whole handling, commit included): median %.2f ms, p99 %.2f ms, max %.2f ms\n",
			c.DotMedianMs, c.DotP99Ms, c.DotMaxMs)
		fmt.Fprintf(w, "recipient's INBOX afterwards: %d messages, %d with Subject: [...] (the server's scrubbing: the chatmail path ran)\n", c.Fetched, c.Scrubbed)
	}
	if in := rep.Ingest; in != nil {
		if err := printChatIngest(w, in); err != nil {
			return err
		}
	}
	if c := rep.MXLatency; c != nil {
		fmt.Fprintf(w, "\ncross-host: %d encrypted, DKIM-signed messages of %d bytes POSTed to /mxdeliv one at a time (%s, the connection kept); 200 to * N EXISTS at the recipient's IDLE: median %.2f ms, p99 %.2f ms, max %.2f ms (%d EXISTS read before the 200, counted as 0)\n",
			c.Samples, c.MessageBytes, c.Protocol, c.MedianMs, c.P99Ms, c.MaxMs, c.Early)
		fmt.Fprintf(w, "from the request's start to * N EXISTS (upload, the server's whole handling, commit included): median %.2f ms, p99 %.2f ms, max %.2f ms; request to 200: median %.2f ms\n",
			c.ReqMedianMs, c.ReqP99Ms, c.ReqMaxMs, c.RoundTripMedianMs)
	}
	if c := rep.IdleConns; c != nil {
		fmt.Fprintf(w, "\nidle: %d of %d connections on %d chatmail accounts (%d each, made by first login) logged in, INBOX selected, idling, opened in %.1f s; restarted server (pid %d): RSS %.1f → %.1f MB (anonymous %.1f → %.1f MB), %.1f KB per connection (anonymous %.1f KB); open files %d → %d\n",
			c.Opened, c.Conns, c.Accounts, c.PerAccount, c.OpenMs/1000, c.ServerPID, mb(c.RSSBefore), mb(c.RSSAfter), mb(c.AnonBefore), mb(c.AnonAfter), c.PerConnKB, c.AnonPerConnKB, c.FDsBefore, c.FDsAfter)
		if c.FirstError != "" {
			fmt.Fprintf(w, "opening stopped at: %s\n", c.FirstError)
		}
	}
	if len(rep.Targets) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\ntargets:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range rep.Targets {
		verdict := "met"
		if !c.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%.2f %s\t%s\n", c.What, c.Goal, c.Value, c.Unit, verdict)
	}
	return tw.Flush()
}

// printChatIngest writes the ingest comparison: the origin checks, then a row per path.
func printChatIngest(w io.Writer, in *chatIngest) error {
	fmt.Fprintf(w, "\ningest from another server (%s, %s DKIM key in the stub DNS, d= the From domain): %d encrypted messages of %d bytes per path to %d chatmail accounts, %d at once, in %d rounds alternating the paths, after %d unmeasured on each\n",
		in.PeerDomain, in.DKIM, in.Messages, in.MessageBytes, in.Recipients, in.Concurrency, in.Rounds, in.Warmup)
	for _, c := range in.Origin {
		verdict := "refused"
		if !c.Refused {
			verdict = "ACCEPTED"
		}
		fmt.Fprintf(w, "  origin check, %s: %s (%s)\n", c.What, verdict, c.Reply)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tprotocol\tconns\tacked\tmsg/s\tp50 ms\tp99 ms\tserver CPU/msg ms\tclient CPU/msg ms\tstored\t")
	for _, r := range []chatIngestRun{in.SMTP, in.MXDeliv} {
		stored := fmt.Sprintf("%d ok", r.Stored)
		if !r.StoredOK {
			stored = fmt.Sprintf("%d MISMATCH", r.Stored)
		}
		name := "port 25"
		if r.Path == "mxdeliv" {
			name = "/mxdeliv"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d\t%.0f\t%.1f\t%.1f\t%.2f\t%.2f\t%s\t\n", name, r.Protocol, r.Connections, r.Acked, r.Sent,
			r.PerSecond, r.P50Ms, r.P99Ms, r.ServerCPUPerMsgMs, r.ClientCPUPerMsgMs, stored)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range []chatIngestRun{in.SMTP, in.MXDeliv} {
		if r.FirstProb != "" {
			fmt.Fprintf(w, "%s: %d refused, %d errors; first: %s\n", r.Path, r.Refused, r.Errors, r.FirstProb)
		}
	}
	fmt.Fprintf(w, "/mxdeliv ÷ port 25: %.3f in msg/s; %.3f in server CPU per message\n", in.Ratio, in.CPURatio)
	return nil
}
