package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/internal/testutil"
)

const imapUsage = `usage: coibench imap [flags]

Measures IMAP on a large mailbox. It fills one account's INBOX with -messages messages
of -size bytes (varied senders, subjects and bodies), then, over implicit TLS:
  - SELECT INBOX + FETCH 1:* (FLAGS ENVELOPE), each run on a fresh logged-in connection;
    the first run, on an empty summary cache, is reported beside the median;
  - UID FETCH 1:* (FLAGS), UID SEARCH SUBJECT and UID SEARCH BODY on one connection;
  - the server's RSS growth per connection that logged in, selected INBOX and is idling
    (-conns of them), read from /proc;
  - IDLE notification latency: messages delivered one at a time over SMTP (port 25),
    from the 250 answering DATA to the idling client reading "* N EXISTS".
The client is a minimal one that reads responses to their end without decoding them,
so the figures are the server's.

By default coibench builds cmd/coibox, starts it on free 127.0.0.1 ports with a
temporary data directory and fills the mailbox through the store, as the server itself
delivers. With -addr it targets a running server instead.

Flags:
`

// imapFlags are the imap benchmark's settings.
type imapFlags struct {
	addr     string
	smtpAddr string
	user     string
	password string
	pid      int
	dataDir  string
	bin      string
	fill     string
	messages int
	size     string
	runs     int
	conns    int
	latency  int
	jsonOut  bool
	keep     bool
	verbose  bool
	logLevel string
	timeout  time.Duration
}

func (f *imapFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "", "benchmark the implicit-TLS IMAP server (port 993) at `host:port` instead of starting one")
	fs.StringVar(&f.smtpAddr, "smtp", "", "with -addr: the server's SMTP `host:port` (port 25), for the IDLE latency and -fill smtp")
	fs.StringVar(&f.user, "user", "", "with -addr: the account `address` whose INBOX is filled and read")
	fs.StringVar(&f.password, "password", "", "with -addr: the account's `password`")
	fs.IntVar(&f.pid, "pid", 0, "with -addr: the server's process `ID`, for the memory per connection")
	fs.StringVar(&f.dataDir, "data-dir", "", "with -addr: the server's data `directory`, to fill the mailbox through the store")
	fs.StringVar(&f.bin, "coibox", "", "coibox `binary` to start (default: build github.com/coibox/coibox/cmd/coibox)")
	fs.StringVar(&f.fill, "fill", "auto", "how the mailbox is filled: store (open the server's database), smtp (port 25), none (already full), auto (store when the data directory is known, else smtp)")
	fs.IntVar(&f.messages, "messages", 10000, "messages put into the INBOX")
	fs.StringVar(&f.size, "size", "4KB", "size of each message")
	fs.IntVar(&f.runs, "runs", 5, "timed runs of each command (the median is reported)")
	fs.IntVar(&f.conns, "conns", 1000, "idling connections opened for the memory figure (0: skip)")
	fs.IntVar(&f.latency, "latency", 1000, "messages delivered one at a time for the IDLE latency (0: skip)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the results as JSON instead of a table")
	fs.BoolVar(&f.keep, "keep", false, "keep the started server's temporary directory (data, config, log)")
	fs.BoolVar(&f.verbose, "v", false, "copy the started server's log to stderr")
	fs.StringVar(&f.logLevel, "log-level", "info", "the started server's log_level")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "timeout of each IMAP command and SMTP round trip")
}

// imapTiming is one command's timed runs.
type imapTiming struct {
	Runs     []float64 `json:"runs_ms"`
	FirstMs  float64   `json:"first_ms"`
	MedianMs float64   `json:"median_ms"`
	// Found is what each run returned: FETCH responses, or UIDs SEARCH found.
	Found int `json:"found"`
	// Want is what it should return, -1 when unknown (the mailbox held other mail).
	Want  int   `json:"want"`
	Bytes int64 `json:"response_bytes"` // of one run
}

func (t *imapTiming) add(d time.Duration, found int, bytes int64) {
	if len(t.Runs) == 0 {
		t.FirstMs = ms(d)
	}
	t.Runs = append(t.Runs, ms(d))
	t.MedianMs = median(t.Runs)
	t.Found, t.Bytes = found, bytes
}

// imapIdleLatency is the IDLE notification latency over Samples deliveries.
type imapIdleLatency struct {
	Samples  int     `json:"samples"`
	MedianMs float64 `json:"median_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	// Early counts EXISTS read before the 250 (both follow the same commit); they
	// count as 0.
	Early int `json:"exists_before_250"`
}

// imapConnMemory is the server's RSS growth for Conns idling connections.
type imapConnMemory struct {
	Conns      int     `json:"conns"`
	RSSBefore  int64   `json:"rss_before_bytes"`
	RSSAfter   int64   `json:"rss_after_bytes"`
	AnonBefore int64   `json:"rss_anon_before_bytes"`
	AnonAfter  int64   `json:"rss_anon_after_bytes"`
	PerConnKB  float64 `json:"rss_per_conn_kb"`
	OpenMs     float64 `json:"open_ms"` // to open, log in, select and idle all of them
}

// imapReport is everything one `coibench imap` measured.
type imapReport struct {
	Target      string  `json:"target"`
	SMTPTarget  string  `json:"smtp_target,omitempty"`
	ServerPID   int     `json:"server_pid,omitempty"`
	CPUs        int     `json:"cpus"`
	MessageSize int64   `json:"message_size_bytes"`
	Messages    int     `json:"messages"` // in INBOX when the commands ran
	Fill        string  `json:"fill"`
	FillSeconds float64 `json:"fill_seconds"`

	SelectFetch   imapTiming       `json:"select_fetch_envelope"`
	UIDFetchFlags imapTiming       `json:"uid_fetch_flags"`
	SearchSubject imapTiming       `json:"search_subject"`
	SearchBody    imapTiming       `json:"search_body"`
	Memory        *imapConnMemory  `json:"idle_conn_memory,omitempty"`
	Idle          *imapIdleLatency `json:"idle_latency,omitempty"`
	Targets       []targetCheck    `json:"targets,omitempty"`
}

// imapTarget is where the benchmark connects, and what it can see of the server.
type imapTarget struct {
	imap, smtp     string
	user, password string
	pid            int
	dataDir        string
}

func runIMAP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("imap", imapUsage, stderr)
	var f imapFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	size, err := config.ParseSize(f.size)
	if err != nil || size <= 0 || f.messages < 0 || f.runs <= 0 || f.conns < 0 || f.latency < 0 || !slices.Contains([]string{"auto", "store", "smtp", "none"}, f.fill) {
		fmt.Fprintln(stderr, "coibench imap: -size must be a size, -runs positive, -messages, -conns and -latency not negative, -fill one of auto, store, smtp, none")
		return errUsage
	}

	var tg imapTarget
	if f.addr != "" {
		if f.user == "" || f.password == "" {
			fmt.Fprintln(stderr, "coibench imap: -addr needs -user and -password")
			return errUsage
		}
		tg = imapTarget{imap: f.addr, smtp: f.smtpAddr, user: f.user, password: f.password, pid: f.pid, dataDir: f.dataDir}
	} else {
		// One account takes every connection, so its limit is raised as the per-IP
		// one is; the rest of the config keeps its defaults.
		srv, err := startServer(ctx, serverOptions{bin: f.bin, users: 1, keep: f.keep, logLevel: f.logLevel,
			log: verboseLog(f.verbose, stderr), limits: fmt.Sprintf("imap_connections_per_account = %d\n", max(2000, f.conns+100))})
		if err != nil {
			return err
		}
		defer func() {
			if err := srv.Close(); err != nil {
				fmt.Fprintf(stderr, "coibench imap: stop server: %v\n", err)
			}
		}()
		user := srv.users[0]
		tg = imapTarget{imap: srv.addr.IMAPS, smtp: srv.addr.SMTP, user: user, password: srv.passwords[user], pid: srv.proc.Pid(), dataDir: srv.dataDir}
	}
	fill := f.fill
	if fill == "auto" {
		fill = "smtp"
		if tg.dataDir != "" {
			fill = "store"
		}
	}
	switch {
	case fill == "store" && tg.dataDir == "":
		fmt.Fprintln(stderr, "coibench imap: -fill store needs -data-dir")
		return errUsage
	case (fill == "smtp" || f.latency > 0) && tg.smtp == "":
		fmt.Fprintln(stderr, "coibench imap: -fill smtp and the IDLE latency need -smtp (or -latency 0 -fill store|none)")
		return errUsage
	}

	rep := &imapReport{Target: tg.imap, SMTPTarget: tg.smtp, ServerPID: tg.pid, CPUs: runtime.NumCPU(), MessageSize: int64(size), Fill: fill}
	progress := func(format string, args ...any) {
		fmt.Fprintf(stderr, "coibench imap: "+format+"\n", args...)
	}
	if err := benchIMAP(ctx, &f, tg, int(size), rep, progress); err != nil {
		return err
	}
	rep.Targets = checkIMAPTargets(rep)
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = printIMAPTable(stdout, rep)
	}
	if err != nil {
		return err
	}
	// A wrong answer is a bug, not a slow run: make it fail scripts that run this.
	for _, t := range []struct {
		what string
		t    imapTiming
	}{{"FETCH ENVELOPE", rep.SelectFetch}, {"UID FETCH FLAGS", rep.UIDFetchFlags}, {"SEARCH SUBJECT", rep.SearchSubject}, {"SEARCH BODY", rep.SearchBody}} {
		if t.t.Want >= 0 && t.t.Found != t.t.Want {
			return fmt.Errorf("%s returned %d, want %d", t.what, t.t.Found, t.t.Want)
		}
	}
	return nil
}

// benchIMAP runs the phases in an order that keeps each figure clean: the connections'
// memory is measured right after the fill, before the commands' work has grown the
// server's heap (freed heap the new connections reused would hide their cost); the
// first FETCH ENVELOPE then still meets an empty summary cache (SELECT does not fill
// it); and the latency comes last, alone, with no other connection being told of the
// new mail.
func benchIMAP(ctx context.Context, f *imapFlags, tg imapTarget, size int, rep *imapReport, progress func(string, ...any)) error {
	c, err := openIMAP(ctx, tg, "", f.timeout)
	if err != nil {
		return err
	}
	before, _, err := c.selectBox("INBOX")
	c.Close()
	if err != nil {
		return err
	}

	start := time.Now()
	switch rep.Fill {
	case "store":
		err = fillStore(ctx, tg.dataDir, tg.user, before+1, f.messages, size)
	case "smtp":
		err = fillSMTP(ctx, tg.smtp, tg.user, before+1, f.messages, size, f.timeout)
	}
	if err != nil {
		return fmt.Errorf("fill INBOX: %w", err)
	}
	rep.FillSeconds = time.Since(start).Seconds()
	if rep.Fill != "none" {
		progress("filled INBOX with %d messages of %s (%s) in %.1f s", f.messages, humanBytes(int64(size)), rep.Fill, rep.FillSeconds)
	}

	if f.conns > 0 && tg.pid != 0 {
		if rep.Memory, err = idleMemory(ctx, tg, f.conns, f.timeout); err != nil {
			return err
		}
		progress("%d idling connections: %.1f KB RSS each", f.conns, rep.Memory.PerConnKB)
	}

	if err := timeCommands(ctx, f, tg, before, rep); err != nil {
		return err
	}
	progress("SELECT+FETCH ENVELOPE median %.1f ms (first %.1f), UID FETCH FLAGS %.1f ms, SEARCH SUBJECT %.1f ms, SEARCH BODY %.1f ms",
		rep.SelectFetch.MedianMs, rep.SelectFetch.FirstMs, rep.UIDFetchFlags.MedianMs, rep.SearchSubject.MedianMs, rep.SearchBody.MedianMs)

	if f.latency > 0 {
		if rep.Idle, err = idleLatency(ctx, tg, f.latency, size, f.timeout); err != nil {
			return err
		}
		progress("IDLE latency over %d deliveries: median %.2f ms, p99 %.2f ms", rep.Idle.Samples, rep.Idle.MedianMs, rep.Idle.P99Ms)
	}
	return nil
}

// openIMAP connects and logs in.
func openIMAP(ctx context.Context, tg imapTarget, localIP string, timeout time.Duration) (*imapConn, error) {
	c, err := dialIMAP(ctx, tg.imap, localIP, timeout)
	if err != nil {
		return nil, err
	}
	if err := c.login(tg.user, tg.password); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// timeCommands times the FETCH and SEARCH commands. before is how many messages the
// INBOX held before the fill; the expected answers are known only if it held none.
func timeCommands(ctx context.Context, f *imapFlags, tg imapTarget, before int, rep *imapReport) error {
	// A SEARCH's expected answer is known only if the INBOX held nothing but the
	// generated mail; FETCH 1:* always answers for every message.
	want := func(n int) int {
		if before != 0 || rep.Fill == "none" {
			return -1
		}
		return n
	}
	// Each run on a fresh connection, as a client opening the mailbox: connecting and
	// logging in are not timed.
	for range f.runs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := openIMAP(ctx, tg, "", f.timeout)
		if err != nil {
			return err
		}
		t0 := time.Now()
		exists, sel, err := c.selectBox("INBOX")
		if err != nil {
			c.Close()
			return err
		}
		r, err := c.cmd(nil, "FETCH 1:* (FLAGS ENVELOPE)")
		d := time.Since(t0)
		_, _ = c.cmd(nil, "LOGOUT")
		c.Close()
		if err != nil {
			return err
		}
		rep.Messages = exists
		rep.SelectFetch.Want = exists
		rep.SelectFetch.add(d, r.Untagged, sel.Bytes+r.Bytes)
	}
	if before == 0 && rep.Fill != "none" && rep.Messages != f.messages {
		return fmt.Errorf("INBOX holds %d messages after filling it with %d", rep.Messages, f.messages)
	}

	c, err := openIMAP(ctx, tg, "", f.timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, _, err := c.selectBox("INBOX"); err != nil {
		return err
	}
	rep.UIDFetchFlags.Want = rep.Messages
	rep.SearchSubject.Want = want(countUpTo(f.messages, hasSubjectWord))
	rep.SearchBody.Want = want(countUpTo(f.messages, hasBodyWord))
	for _, cmd := range []struct {
		t   *imapTiming
		run func() (int, imapReply, error)
	}{
		{&rep.UIDFetchFlags, func() (int, imapReply, error) {
			r, err := c.cmd(nil, "UID FETCH 1:* (FLAGS)")
			return r.Untagged, r, err
		}},
		{&rep.SearchSubject, func() (int, imapReply, error) { return c.searchCount("SUBJECT " + subjectWord) }},
		{&rep.SearchBody, func() (int, imapReply, error) { return c.searchCount("BODY " + bodyWord) }},
	} {
		for range f.runs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t0 := time.Now()
			found, r, err := cmd.run()
			if err != nil {
				return err
			}
			cmd.t.add(time.Since(t0), found, r.Bytes)
		}
	}
	_, _ = c.cmd(nil, "LOGOUT")
	return nil
}

// idleMemory opens n connections that log in, select INBOX and idle, and reads the
// server's RSS before and after. They come from several loopback addresses when the
// server is local, so that a server with the default per-IP limit takes them too.
func idleMemory(ctx context.Context, tg imapTarget, n int, timeout time.Duration) (*imapConnMemory, error) {
	m := &imapConnMemory{Conns: n}
	before, err := settledMemory(ctx, tg.pid)
	if err != nil {
		return nil, err
	}
	m.RSSBefore, m.AnonBefore = before.RSS, before.Anon

	conns := make([]*imapConn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = fmt.Fprint(c.conn, "DONE\r\nz LOGOUT\r\n")
				c.Close()
			}
		}
	}()
	spread := isLoopback(tg.imap)
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		werr    error
	)
	start := time.Now()
	// A few at once: the TLS handshakes are the slow part, and they are CPU.
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ip := ""
				if spread {
					ip = fmt.Sprintf("127.0.%d.%d", 60+i/40/250, i/40%250+1) // 40 per address
				}
				c, err := openIMAP(ctx, tg, ip, timeout)
				if err == nil {
					conns[i] = c
					if _, _, err = c.selectBox("INBOX"); err == nil {
						err = c.idle()
					}
				}
				if err != nil {
					errOnce.Do(func() { werr = fmt.Errorf("idling connection %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	if werr == nil {
		werr = ctx.Err()
	}
	if werr != nil {
		return nil, werr
	}
	m.OpenMs = ms(time.Since(start))
	after, err := settledMemory(ctx, tg.pid)
	if err != nil {
		return nil, err
	}
	m.RSSAfter, m.AnonAfter = after.RSS, after.Anon
	m.PerConnKB = float64(m.RSSAfter-m.RSSBefore) / 1024 / float64(n)
	return m, nil
}

// settledMemory reads a process's memory once its RSS has stopped moving (two reads
// 300 ms apart within 1%, or after 5 s): the server's last allocations and the
// runtime's returning of memory take a moment after the clients are done.
func settledMemory(ctx context.Context, pid int) (memory, error) {
	prev, err := readMemory(pid)
	if err != nil {
		return prev, err
	}
	for range 16 {
		select {
		case <-ctx.Done():
			return prev, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		cur, err := readMemory(pid)
		if err != nil {
			return cur, err
		}
		diff := cur.RSS - prev.RSS
		prev = cur
		if diff < 0 {
			diff = -diff
		}
		if diff*100 <= cur.RSS {
			break
		}
	}
	return prev, nil
}

// idleLatency delivers k messages over one SMTP connection, one at a time, to an
// account whose INBOX another connection idles on, and
// times each from the client's reading the 250 after DATA to the idling client's
// reading "* N EXISTS". Both clients are this process, so one monotonic clock.
func idleLatency(ctx context.Context, tg imapTarget, k, size int, timeout time.Duration) (*imapIdleLatency, error) {
	ic, err := openIMAP(ctx, tg, "", timeout)
	if err != nil {
		return nil, err
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

	sc, greet, err := testutil.DialSMTP(ctx, tg.smtp, testutil.SMTPDialOptions{Timeout: timeout})
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	if greet.Code != 220 {
		return nil, fmt.Errorf("smtp greeting: %s", greet)
	}
	if r, err := sc.Hello("bench-client.sender.example"); err != nil || r.Code != 250 {
		return nil, fmt.Errorf("smtp EHLO: %s %v", r, err)
	}
	lat := make([]time.Duration, 0, k)
	res := &imapIdleLatency{}
	for j := range k {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Numbered after the filled mailbox, so the message is like the others.
		msg := mailMessage(exists+j+1, tg.user, size)
		r, err := sc.SendPipelined(benchSender, []string{tg.user}, msg)
		acked := time.Now()
		if err != nil {
			return nil, fmt.Errorf("latency message %d: %w", j, err)
		}
		if r.Code != 250 {
			return nil, fmt.Errorf("latency message %d: %s", j, r)
		}
		want := exists + j + 1
		for got := false; !got; {
			select {
			case ev := <-events:
				if ev.n < want {
					continue // a late duplicate; not expected, harmless
				}
				got = true
				d := ev.at.Sub(acked)
				if d < 0 {
					res.Early++
					d = 0
				}
				lat = append(lat, d)
			case err := <-watched:
				return nil, fmt.Errorf("idling connection: %w", err)
			case <-time.After(timeout):
				return nil, fmt.Errorf("no * %d EXISTS within %v of the 250", want, timeout)
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	_ = sc.Quit()
	_, _ = fmt.Fprint(ic.conn, "DONE\r\n")
	slices.Sort(lat)
	res.Samples = len(lat)
	res.MedianMs = ms(percentile(lat, 0.50))
	res.P99Ms = ms(percentile(lat, 0.99))
	res.MaxMs = ms(lat[len(lat)-1])
	return res, nil
}

// The goals coibox's IMAP is measured against, for a 10,000-message INBOX.
const (
	goalSelectFetchMs   = 60.0
	goalUIDFetchFlagsMs = 8.0
	goalSearchSubjectMs = 15.0
	goalSearchBodyMs    = 400.0
	goalIdleMedianMs    = 5.0
	goalIdleP99Ms       = 20.0
	goalConnKB          = 50.0
)

func checkIMAPTargets(rep *imapReport) []targetCheck {
	box := fmt.Sprintf(", %d messages", rep.Messages)
	below := func(what string, goal, v float64, unit string) targetCheck {
		return targetCheck{What: what, Goal: fmt.Sprintf("< %g %s", goal, unit), Value: v, Unit: unit, Met: v < goal}
	}
	out := []targetCheck{
		below("SELECT + FETCH 1:* (FLAGS ENVELOPE) median"+box, goalSelectFetchMs, rep.SelectFetch.MedianMs, "ms"),
		below("UID FETCH 1:* (FLAGS) median"+box, goalUIDFetchFlagsMs, rep.UIDFetchFlags.MedianMs, "ms"),
		below("UID SEARCH SUBJECT median"+box, goalSearchSubjectMs, rep.SearchSubject.MedianMs, "ms"),
		below("UID SEARCH BODY median"+box, goalSearchBodyMs, rep.SearchBody.MedianMs, "ms"),
	}
	if rep.Idle != nil {
		out = append(out,
			below("DATA 250 to * EXISTS, median", goalIdleMedianMs, rep.Idle.MedianMs, "ms"),
			below("DATA 250 to * EXISTS, p99", goalIdleP99Ms, rep.Idle.P99Ms, "ms"))
	}
	if rep.Memory != nil {
		out = append(out, below("server RSS per idling connection", goalConnKB, rep.Memory.PerConnKB, "KB"))
	}
	return out
}

func printIMAPTable(w io.Writer, rep *imapReport) error {
	fmt.Fprintf(w, "coibox IMAP on %s (server pid %d, %d CPUs shared with the client)\n", rep.Target, rep.ServerPID, rep.CPUs)
	fmt.Fprintf(w, "INBOX: %d messages of about %s", rep.Messages, humanBytes(rep.MessageSize))
	if rep.Fill != "none" {
		fmt.Fprintf(w, ", filled through %s in %.1f s", rep.Fill, rep.FillSeconds)
	}
	fmt.Fprintf(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "command\truns\tfirst ms\tmedian ms\tmin ms\tmax ms\tfound\tresponse KB\t")
	for _, row := range []struct {
		name string
		t    imapTiming
	}{
		{"SELECT INBOX + FETCH 1:* (FLAGS ENVELOPE)", rep.SelectFetch},
		{"UID FETCH 1:* (FLAGS)", rep.UIDFetchFlags},
		{"UID SEARCH SUBJECT " + subjectWord, rep.SearchSubject},
		{"UID SEARCH BODY " + bodyWord, rep.SearchBody},
	} {
		found := fmt.Sprint(row.t.Found)
		switch {
		case row.t.Want < 0:
		case row.t.Found == row.t.Want:
			found += " ok"
		default:
			found += fmt.Sprintf(" WANT %d", row.t.Want)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%.0f\t\n", row.name, len(row.t.Runs), row.t.FirstMs, row.t.MedianMs,
			slices.Min(row.t.Runs), slices.Max(row.t.Runs), found, float64(row.t.Bytes)/1024)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "(SELECT+FETCH: each run on a fresh connection, the first with the server's summary cache empty)")
	if m := rep.Memory; m != nil {
		fmt.Fprintf(w, "\n%d connections logged in, INBOX selected, idling: server RSS %.1f → %.1f MB (anonymous %.1f → %.1f MB), %.1f KB per connection; opened in %.1f s\n",
			m.Conns, mb(m.RSSBefore), mb(m.RSSAfter), mb(m.AnonBefore), mb(m.AnonAfter), m.PerConnKB, m.OpenMs/1000)
	}
	if l := rep.Idle; l != nil {
		fmt.Fprintf(w, "\nIDLE: %d messages delivered one at a time over SMTP; 250 after DATA to * N EXISTS: median %.2f ms, p99 %.2f ms, max %.2f ms (%d EXISTS read before the 250)\n",
			l.Samples, l.MedianMs, l.P99Ms, l.MaxMs, l.Early)
	}
	if len(rep.Targets) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\ntargets:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range rep.Targets {
		verdict := "met"
		if !c.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%.2f %s\t%s\n", c.What, c.Goal, c.Value, c.Unit, verdict)
	}
	return tw.Flush()
}
