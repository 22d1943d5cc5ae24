package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/internal/testutil"
)

const smtpUsage = `usage: coibench smtp [flags]

Measures SMTP ingest on port 25: how many messages per second the server accepts with
250 after DATA, confirmed by counting the messages in its store afterwards, for each
message size and concurrency; with the server's CPU time per message and its peak RSS
during each run (from /proc). Before the runs it times how long the server takes from
process start to accepting connections, and its idle RSS.

By default coibench builds cmd/coibox (go build, so run it from the module), starts it
on free 127.0.0.1 ports with a temporary data directory, a stub DNS server and 10
accounts, and stops it at the end. With -addr it targets a running server instead.

Flags:
`

// smtpFlags are the smtp benchmark's settings.
type smtpFlags struct {
	addr     string
	pid      int
	dataDir  string
	metrics  string
	rcpts    string
	bin      string
	sizes    string
	conc     string
	messages int
	perConn  int
	pipeline bool
	users    int
	warmup   int
	starts   int
	jsonOut  bool
	keep     bool
	verbose  bool
	logLevel string
	perf     string
	timeout  time.Duration
}

func (f *smtpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "", "benchmark the SMTP server at `host:port` instead of starting one")
	fs.IntVar(&f.pid, "pid", 0, "with -addr: the server's process `ID`, for its CPU and memory figures")
	fs.StringVar(&f.dataDir, "data-dir", "", "with -addr: the server's data `directory`, to confirm the messages were stored")
	fs.StringVar(&f.metrics, "metrics", "", "with -addr: the server's metrics `URL` (http://host:port/metrics), for group-commit figures")
	fs.StringVar(&f.rcpts, "rcpt", "", "with -addr: comma-separated recipient `addresses` (local accounts of that server)")
	fs.StringVar(&f.bin, "coibox", "", "coibox `binary` to start (default: build github.com/coibox/coibox/cmd/coibox)")
	fs.StringVar(&f.sizes, "sizes", "4KB,100KB", "comma-separated message `sizes`")
	fs.StringVar(&f.conc, "conc", "1,16,64", "comma-separated `concurrencies` (connections at once)")
	fs.IntVar(&f.messages, "messages", 2000, "messages sent in each run (one run per size and concurrency)")
	fs.IntVar(&f.perConn, "per-conn", 1, "messages sent over each connection before QUIT")
	fs.BoolVar(&f.pipeline, "pipelining", true, "send MAIL, RCPT and DATA in one write (RFC 2920), as MTAs do; -pipelining=false waits for each reply")
	fs.IntVar(&f.users, "users", 10, "accounts created on the started server; messages go to them in turn")
	fs.IntVar(&f.warmup, "warmup", 100, "messages sent before the runs and not measured")
	fs.IntVar(&f.starts, "starts", 5, "times the server is started to time start-to-listening (the median is reported)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the results as JSON instead of a table")
	fs.BoolVar(&f.keep, "keep", false, "keep the started server's temporary directory (data, config, log)")
	fs.BoolVar(&f.verbose, "v", false, "copy the started server's log to stderr")
	fs.StringVar(&f.logLevel, "log-level", "info", "the started server's log_level (info, its default, logs a line per message)")
	fs.StringVar(&f.perf, "perf", "", "record the server with `perf record -g` during the runs into `file` (needs perf)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "per-command SMTP timeout")
}

// smtpRun is the outcome of one size and concurrency.
type smtpRun struct {
	Size        int64   `json:"size_bytes"`
	Concurrency int     `json:"concurrency"`
	PerConn     int     `json:"messages_per_connection"`
	Sent        int     `json:"sent"`
	Acked       int     `json:"acked"`
	Refused     int     `json:"refused"`
	Errors      int     `json:"errors"`
	FirstProb   string  `json:"first_problem,omitempty"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"messages_per_second"`
	P50ms       float64 `json:"latency_p50_ms"`
	P99ms       float64 `json:"latency_p99_ms"`
	// Stored is how many messages the store gained during the run, -1 if not counted.
	Stored int64 `json:"stored"`
	// StoredOK: Stored equals Acked.
	StoredOK bool `json:"stored_ok"`
	// Server figures, 0 when the server's process is unknown.
	ServerCPUPerMsgMs float64 `json:"server_cpu_per_message_ms"`
	ServerPeakRSS     int64   `json:"server_peak_rss_bytes"`
	ClientCPUPerMsgMs float64 `json:"client_cpu_per_message_ms"`
	// Group commit, from the server's metrics: transactions, writes per transaction and
	// the mean time of one (fsync included); 0 when there are no metrics.
	Commits      int     `json:"commits"`
	WritesPerTx  float64 `json:"writes_per_commit"`
	CommitMeanMs float64 `json:"commit_mean_ms"`
}

// smtpReport is everything one `coibench smtp` measured.
type smtpReport struct {
	Target        string    `json:"target"`
	ServerPID     int       `json:"server_pid,omitempty"`
	CPUs          int       `json:"cpus"`
	Pipelining    bool      `json:"pipelining"`
	StartToListen []float64 `json:"start_to_listen_ms,omitempty"`
	ListenMedian  float64   `json:"start_to_listen_median_ms,omitempty"`
	// MainToListen is the server's own figure (its "listening" log line): from main()
	// to bound sockets, without exec and runtime start-up; 0 when not logged.
	MainToListen []float64     `json:"main_to_listen_ms,omitempty"`
	MainMedian   float64       `json:"main_to_listen_median_ms,omitempty"`
	IdleRSS      int64         `json:"idle_rss_bytes,omitempty"`
	IdleAnon     int64         `json:"idle_rss_anon_bytes,omitempty"`
	Runs         []smtpRun     `json:"runs"`
	Targets      []targetCheck `json:"targets,omitempty"`
}

func runSMTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("smtp", smtpUsage, stderr)
	var f smtpFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sizes, concs, err := f.matrix()
	if err != nil {
		fmt.Fprintf(stderr, "coibench smtp: %v\n", err)
		return errUsage
	}

	rep := &smtpReport{CPUs: runtime.NumCPU()}
	var refs serverRefs
	var rcpts []string
	if f.addr != "" {
		if f.rcpts == "" {
			fmt.Fprintln(stderr, "coibench smtp: -addr needs -rcpt")
			return errUsage
		}
		rep.Target, rcpts = f.addr, strings.Split(f.rcpts, ",")
		refs = serverRefs{pid: f.pid, dataDir: f.dataDir, metricsURL: f.metrics}
	} else {
		srv, err := startSMTPServer(ctx, &f, rep, stderr)
		if err != nil {
			return err
		}
		defer func() {
			if err := srv.Close(); err != nil {
				fmt.Fprintf(stderr, "coibench smtp: stop server: %v\n", err)
			}
		}()
		rep.Target, rcpts = srv.addr.SMTP, srv.users
		refs = serverRefs{pid: srv.proc.Pid(), dataDir: srv.dataDir, metricsURL: "http://" + srv.addr.HTTP + "/metrics"}
	}
	pid := refs.pid
	rep.ServerPID = pid

	gen := &smtpLoad{addr: rep.Target, rcpts: rcpts, timeout: f.timeout, spread: isLoopback(rep.Target), pipeline: f.pipeline}
	rep.Pipelining = f.pipeline
	if f.warmup > 0 {
		if r := gen.run(ctx, 4000, min(4, f.warmup), 1, f.warmup); r.Acked == 0 {
			return fmt.Errorf("warm-up: no message accepted: %s", r.FirstProb)
		}
	}
	if f.perf != "" {
		if pid == 0 {
			return errors.New("-perf needs the server's process (start one, or give -pid)")
		}
		stopPerf, err := startPerf(f.perf, pid, stderr)
		if err != nil {
			return err
		}
		defer stopPerf()
	}
	for _, size := range sizes {
		for _, c := range concs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := measure(ctx, gen, refs, size, c, f.perConn, f.messages)
			if err != nil {
				return err
			}
			rep.Runs = append(rep.Runs, r)
			if !f.jsonOut {
				fmt.Fprintf(stderr, "coibench smtp: %s × %d: %.0f msg/s\n", humanBytes(size), c, r.PerSecond)
			}
		}
	}
	rep.Targets = checkTargets(rep)
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = printSMTPTable(stdout, rep)
	}
	if err != nil {
		return err
	}
	// A message acknowledged but not stored (or stored but not acknowledged) is a bug,
	// not a slow run: make it fail scripts that run the benchmark.
	for _, r := range rep.Runs {
		if r.Stored >= 0 && !r.StoredOK {
			return fmt.Errorf("%s × %d: %d messages acknowledged but the store gained %d", humanBytes(r.Size), r.Concurrency, r.Acked, r.Stored)
		}
	}
	return nil
}

// startSMTPServer starts the server for the smtp benchmark and records its start-up
// figures in rep: time to listen over f.starts starts, idle RSS after the last one.
func startSMTPServer(ctx context.Context, f *smtpFlags, rep *smtpReport, stderr io.Writer) (*benchServer, error) {
	srv, err := startServer(ctx, serverOptions{bin: f.bin, users: f.users, keep: f.keep, logLevel: f.logLevel, log: verboseLog(f.verbose, stderr)})
	if err != nil {
		return nil, err
	}
	// The first start also made the certificate; later starts are the ordinary kind.
	// All are reported, with their median.
	record := func() {
		rep.StartToListen = append(rep.StartToListen, ms(srv.proc.Listening))
		rep.MainToListen = append(rep.MainToListen, srv.mainToListen())
	}
	record()
	for range f.starts - 1 {
		if err := srv.stop(); err != nil {
			return nil, errors.Join(err, srv.Close())
		}
		if err := srv.start(ctx); err != nil {
			return nil, errors.Join(err, srv.Close())
		}
		record()
	}
	rep.ListenMedian = median(rep.StartToListen)
	rep.MainMedian = median(rep.MainToListen)
	// Idle RSS: what the server holds once started, before any client came.
	time.Sleep(time.Second)
	mem, err := readMemory(srv.proc.Pid())
	if err != nil {
		return nil, errors.Join(err, srv.Close())
	}
	rep.IdleRSS, rep.IdleAnon = mem.RSS, mem.Anon
	fmt.Fprintf(stderr, "coibench smtp: start to listening %v ms (in main: %v ms), idle RSS %.1f MB\n", rounded(rep.StartToListen), rounded(rep.MainToListen), mb(rep.IdleRSS))
	return srv, nil
}

func verboseLog(on bool, w io.Writer) io.Writer {
	if on {
		return w
	}
	return nil
}

// matrix parses the size and concurrency lists.
func (f *smtpFlags) matrix() (sizes []int64, concs []int, err error) {
	for s := range strings.SplitSeq(f.sizes, ",") {
		z, err := config.ParseSize(strings.TrimSpace(s))
		if err != nil || z <= 0 {
			return nil, nil, fmt.Errorf("-sizes: bad size %q", s)
		}
		sizes = append(sizes, int64(z))
	}
	for s := range strings.SplitSeq(f.conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c <= 0 {
			return nil, nil, fmt.Errorf("-conc: bad concurrency %q", s)
		}
		concs = append(concs, c)
	}
	if f.messages <= 0 || f.perConn <= 0 {
		return nil, nil, errors.New("-messages and -per-conn must be positive")
	}
	return sizes, concs, nil
}

// serverRefs are the ways to look at the server from outside; each may be missing.
type serverRefs struct {
	pid        int
	dataDir    string
	metricsURL string
}

// measure runs one size and concurrency and takes the server's figures around it.
func measure(ctx context.Context, gen *smtpLoad, srv serverRefs, size int64, conc, perConn, messages int) (smtpRun, error) {
	pid, dataDir := srv.pid, srv.dataDir
	var before int64 = -1
	if dataDir != "" {
		n, err := storedMessages(ctx, dataDir)
		if err != nil {
			return smtpRun{}, err
		}
		before = n
	}
	var cpu0 time.Duration
	if pid != 0 {
		if err := resetPeak(pid); err != nil {
			return smtpRun{}, err
		}
		var err error
		if cpu0, err = cpuTime(pid); err != nil {
			return smtpRun{}, err
		}
	}
	var commits0 commitStats
	if srv.metricsURL != "" {
		var err error
		if commits0, err = scrapeCommits(ctx, srv.metricsURL); err != nil {
			return smtpRun{}, err
		}
	}
	self0, _ := cpuTime(os.Getpid())

	r := gen.run(ctx, size, conc, perConn, messages)

	self1, _ := cpuTime(os.Getpid())
	if r.Acked > 0 {
		r.ClientCPUPerMsgMs = ms(self1-self0) / float64(r.Acked)
	}
	if pid != 0 {
		cpu1, err := cpuTime(pid)
		if err != nil {
			return r, err
		}
		mem, err := readMemory(pid)
		if err != nil {
			return r, err
		}
		r.ServerPeakRSS = mem.Peak
		if r.Acked > 0 {
			r.ServerCPUPerMsgMs = ms(cpu1-cpu0) / float64(r.Acked)
		}
	}
	if srv.metricsURL != "" {
		c1, err := scrapeCommits(ctx, srv.metricsURL)
		if err != nil {
			return r, err
		}
		r.Commits = int(c1.commits - commits0.commits)
		if r.Commits > 0 {
			r.WritesPerTx = (c1.writes - commits0.writes) / float64(r.Commits)
			r.CommitMeanMs = 1000 * (c1.duration - commits0.duration) / float64(r.Commits)
		}
	}
	r.Stored = -1
	if before >= 0 {
		after, err := storedMessages(ctx, dataDir)
		if err != nil {
			return r, err
		}
		r.Stored = after - before
		r.StoredOK = r.Stored == int64(r.Acked)
	}
	return r, nil
}

// smtpLoad sends benchmark mail to one server.
type smtpLoad struct {
	addr    string
	rcpts   []string
	timeout time.Duration
	// spread gives each worker its own 127.0.x.y source address, as distinct peers
	// would have, so that per-IP limits and ephemeral ports are not one client's.
	spread   bool
	pipeline bool
	runs     atomic.Int64
}

// run sends messages of size bytes over conc concurrent workers, each opening
// connections that carry perConn messages.
func (g *smtpLoad) run(ctx context.Context, size int64, conc, perConn, messages int) smtpRun {
	runID := g.runs.Add(1)
	body := messageBody(size)
	res := smtpRun{Size: size, Concurrency: conc, PerConn: perConn}
	var (
		next      atomic.Int64 // the next message number to send
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, messages)
		wg        sync.WaitGroup
	)
	problem := func(s string) {
		if res.FirstProb == "" {
			res.FirstProb = s
		}
	}
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			opts := testutil.SMTPDialOptions{Timeout: g.timeout}
			if g.spread {
				opts.LocalIP = fmt.Sprintf("127.0.%d.%d", 20+w/250, w%250+1)
			}
			for ctx.Err() == nil {
				first := int(next.Add(int64(perConn))) - perConn
				if first >= messages {
					return
				}
				n := min(perConn, messages-first)
				lat, acked, refused, errs, prob := g.conn(ctx, opts, runID, first, n, body)
				mu.Lock()
				latencies = append(latencies, lat...)
				res.Sent += n
				res.Acked += acked
				res.Refused += refused
				res.Errors += errs
				if prob != "" {
					problem(prob)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.Seconds = elapsed.Seconds()
	if res.Acked > 0 {
		res.PerSecond = float64(res.Acked) / elapsed.Seconds()
	}
	slices.Sort(latencies)
	res.P50ms = ms(percentile(latencies, 0.50))
	res.P99ms = ms(percentile(latencies, 0.99))
	return res
}

// conn sends messages first…first+n-1 over one connection. The first message's latency
// counts from the dial (connect, greeting, EHLO included), later ones from MAIL FROM.
func (g *smtpLoad) conn(ctx context.Context, opts testutil.SMTPDialOptions, runID int64, first, n int, body []byte) (lat []time.Duration, acked, refused, errs int, prob string) {
	t0 := time.Now()
	c, greet, err := testutil.DialSMTP(ctx, g.addr, opts)
	if err != nil {
		return nil, 0, 0, n, err.Error()
	}
	defer c.Close()
	if greet.Code != 220 {
		return nil, 0, n, 0, "greeting: " + greet.String()
	}
	if r, err := c.Hello("bench-client.sender.example"); err != nil || r.Code != 250 {
		return nil, 0, 0, n, fmt.Sprintf("EHLO: %s %v", r, err)
	}
	for i := range n {
		seq := first + i
		rcpt := g.rcpts[seq%len(g.rcpts)]
		msg := messageWithHeader(runID, seq, rcpt, body)
		send := c.Send
		if g.pipeline {
			send = c.SendPipelined
		}
		r, err := send(benchSender, []string{rcpt}, msg)
		if err != nil {
			return lat, acked, refused, errs + n - i, fmt.Sprintf("message %d: %v", seq, err)
		}
		if r.Code != 250 {
			refused++
			prob = "refused: " + r.String()
		} else {
			acked++
			lat = append(lat, time.Since(t0))
		}
		t0 = time.Now()
	}
	if _, err := c.Cmd("QUIT"); err != nil && prob == "" {
		prob = "QUIT: " + err.Error()
	}
	return lat, acked, refused, errs, prob
}

// messageBody is the part of every benchmark message after its header: base64 lines
// of random bytes, like an attachment, to make up size bytes with the header.
func messageBody(size int64) []byte {
	const header = 400 // about what messageWithHeader adds
	n := max(size-header, 64)
	raw := make([]byte, n*3/4)
	rng := rand.NewChaCha8([32]byte{'c', 'o', 'i', 'b', 'o', 'x'})
	_, _ = rng.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b bytes.Buffer
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 0 {
		k := min(76, len(enc))
		b.WriteString(enc[:k])
		b.WriteString("\r\n")
		enc = enc[k:]
	}
	return b.Bytes()
}

// messageWithHeader prepends a unique header to body.
func messageWithHeader(runID int64, seq int, rcpt string, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + 400)
	fmt.Fprintf(&b, "From: Bench Sender <%s>\r\nTo: <%s>\r\nSubject: coibench message %d.%d\r\nDate: %s\r\nMessage-ID: <bench-%d-%d-%d@sender.example>\r\n",
		benchSender, rcpt, runID, seq, time.Now().Format(time.RFC1123Z), os.Getpid(), runID, seq)
	b.Write(body)
	return b.Bytes()
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() && ip.To4() != nil
}

// startPerf records the server's CPU profile with perf until the returned func runs.
func startPerf(file string, pid int, stderr io.Writer) (stop func(), err error) {
	cmd := exec.Command("perf", "record", "-F", "999", "-g", "-o", file, "-p", strconv.Itoa(pid))
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start perf: %w", err)
	}
	time.Sleep(200 * time.Millisecond) // let perf attach before the load starts
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
