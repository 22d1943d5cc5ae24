package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/coibox/coibox/internal/testutil"
)

const soakUsage = `usage: coibench soak [flags]

Starts coibox, opens -conns IMAP connections idling on INBOX, and for -duration
delivers mail over SMTP at -rate messages/s while a reader fetches new mail. It
samples the server's RSS, goroutines and open files every -sample and reports the
RSS slope after -warmup; at the end every acknowledged message must be fetchable
and coibox verify must find the store consistent.

`

// soakSample is one reading of the server.
type soakSample struct {
	At         float64 `json:"at_s"` // since the load started
	RSS        int64   `json:"rss_bytes"`
	Anon       int64   `json:"rss_anon_bytes"`
	Goroutines int     `json:"goroutines"`
	FDs        int     `json:"fds"`
}

// soakReport is what coibench soak prints (-json) or tabulates.
type soakReport struct {
	Duration   float64 `json:"duration_s"`
	Warmup     float64 `json:"warmup_s"`
	Conns      int     `json:"conns"`
	Idling     int     `json:"idling"` // connections still idling at the end
	Users      int     `json:"users"`
	Rate       float64 `json:"rate_per_s"`
	Acked      int64   `json:"acked"`
	Refused    int64   `json:"refused"`
	Fetched    int64   `json:"fetched"` // messages the reader fetched while the load ran
	Fetchable  int64   `json:"fetchable"`
	VerifyOK   bool    `json:"verify_ok"`
	FirstError string  `json:"first_error,omitempty"`
	// RSSSlope is the least-squares slope of RSS over the samples after the warm-up,
	// in MiB per minute; AnonSlope the same for RssAnon.
	RSSSlope  float64 `json:"rss_slope_mib_per_min"`
	AnonSlope float64 `json:"rss_anon_slope_mib_per_min"`
	// GoroutinesWarm and GoroutinesEnd are the server's goroutines at the end of the
	// warm-up and at the end of the load; GoroutinesBefore before any connection
	// opened and GoroutinesAfter once every client connection has closed.
	GoroutinesBefore int          `json:"goroutines_before"`
	GoroutinesWarm   int          `json:"goroutines_warm"`
	GoroutinesEnd    int          `json:"goroutines_end"`
	GoroutinesAfter  int          `json:"goroutines_after"`
	Samples          []soakSample `json:"samples"`
}

func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("soak", soakUsage, stderr)
	duration := fs.Duration("duration", 10*time.Minute, "how long the load runs")
	warmup := fs.Duration("warmup", time.Minute, "start of the load left out of the RSS slope")
	conns := fs.Int("conns", 1000, "IMAP connections idling on INBOX")
	users := fs.Int("users", 20, "accounts the connections and the mail are spread over")
	rate := fs.Float64("rate", 50, "SMTP messages per second")
	sample := fs.Duration("sample", 5*time.Second, "time between readings of the server")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "show the server's log")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *conns < 1 || *users < 1 || *rate <= 0 || *duration <= *warmup || *sample <= 0 {
		fmt.Fprintln(stderr, "coibench soak: want -conns, -users, -rate above 0 and -duration above -warmup")
		return errUsage
	}
	perAccount := (*conns + *users - 1) / *users
	srv, err := startServer(ctx, serverOptions{users: *users, imapPerIP: *conns + 100, imapPerAccount: perAccount + 10,
		log: verboseLog(*verbose, stderr)})
	if err != nil {
		return err
	}
	defer srv.Close()
	rep, err := soak(ctx, srv, soakParams{duration: *duration, warmup: *warmup, conns: *conns, rate: *rate, sample: *sample})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printSoak(stdout, rep)
}

type soakParams struct {
	duration, warmup, sample time.Duration
	conns                    int
	rate                     float64
}

// soak runs the load against srv and stops srv at the end (verify needs the store
// to itself).
func soak(ctx context.Context, srv *benchServer, p soakParams) (*soakReport, error) {
	rep := &soakReport{Duration: p.duration.Seconds(), Warmup: p.warmup.Seconds(), Conns: p.conns, Users: len(srv.users), Rate: p.rate}
	pid := srv.proc.Pid()
	metricsURL := "http://" + srv.addr.HTTP + "/metrics"
	var firstErr atomic.Pointer[string]
	fail := func(err error) {
		s := err.Error()
		firstErr.CompareAndSwap(nil, &s)
	}
	var err error
	if rep.GoroutinesBefore, err = scrapeGoroutines(ctx, metricsURL); err != nil {
		return nil, err
	}

	// The idling connections; each drains its EXISTS updates as a client would.
	idlers := make([]*imapConn, p.conns)
	if err := parallel(ctx, 8, p.conns, func(i int) error {
		c, err := dialIMAPBuf(ctx, srv.addr.IMAPS, "", 30*time.Second, idleConnBuf)
		if err != nil {
			return err
		}
		u := srv.users[i%len(srv.users)]
		if err := c.login(u, srv.passwords[u]); err != nil {
			c.Close()
			return err
		}
		if _, _, err := c.selectBox("INBOX"); err != nil {
			c.Close()
			return err
		}
		if err := c.idle(); err != nil {
			c.Close()
			return err
		}
		idlers[i] = c
		return nil
	}); err != nil {
		for _, c := range idlers {
			if c != nil {
				c.Close()
			}
		}
		return nil, fmt.Errorf("open idling connections: %w", err)
	}
	var idling atomic.Int64
	var watchers sync.WaitGroup
	events := make(chan existsEvent, 1024)
	go func() {
		for range events {
		}
	}()
	for _, c := range idlers {
		idling.Add(1)
		watchers.Go(func() {
			_ = c.watchExists(events)
			idling.Add(-1)
		})
	}

	loadCtx, stopLoad := context.WithTimeout(ctx, p.duration)
	defer stopLoad()
	start := time.Now()
	var load sync.WaitGroup
	var acked, refused, fetched atomic.Int64
	ackedBy := make([]atomic.Int64, len(srv.users))

	// SMTP ingest: a few connections share the rate.
	const senders = 4
	for k := range senders {
		load.Go(func() {
			cl, _, err := testutil.DialSMTP(loadCtx, srv.addr.SMTP, testutil.SMTPDialOptions{})
			if err != nil {
				fail(err)
				return
			}
			defer cl.Close()
			if _, err := cl.Hello("soak.example"); err != nil {
				fail(err)
				return
			}
			tick := time.NewTicker(time.Duration(float64(time.Second) * senders / p.rate))
			defer tick.Stop()
			body := messageBody(4000)
			for seq := k; ; seq += senders {
				select {
				case <-loadCtx.Done():
					_ = cl.Quit()
					return
				case <-tick.C:
				}
				u := seq % len(srv.users)
				r, err := cl.Send(benchSender, []string{srv.users[u]}, messageWithHeader(1, seq, srv.users[u], body))
				switch {
				case err != nil:
					if loadCtx.Err() == nil {
						fail(fmt.Errorf("smtp: %w", err))
					}
					return
				case r.Code == 250:
					acked.Add(1)
					ackedBy[u].Add(1)
				default:
					refused.Add(1)
					fail(fmt.Errorf("smtp refused: %v", r))
				}
			}
		})
	}

	// A reader that logs in to one account after another and fetches its newest mail.
	load.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for loadCtx.Err() == nil {
			u := srv.users[rng.IntN(len(srv.users))]
			n, err := fetchNewest(loadCtx, srv, u, 10)
			if err != nil {
				if loadCtx.Err() == nil {
					fail(fmt.Errorf("reader: %w", err))
				}
				return
			}
			fetched.Add(int64(n))
			select {
			case <-loadCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	})

	// The sampler.
	read := func() {
		m, err := readMemory(pid)
		if err != nil {
			fail(err)
			return
		}
		g, err := scrapeGoroutines(ctx, metricsURL)
		if err != nil {
			fail(err)
			return
		}
		fds, _ := openFDs(pid)
		rep.Samples = append(rep.Samples, soakSample{At: time.Since(start).Seconds(), RSS: m.RSS, Anon: m.Anon, Goroutines: g, FDs: fds})
	}
	read()
	tick := time.NewTicker(p.sample)
	warmDone := time.After(p.warmup)
sampling:
	for {
		select {
		case <-loadCtx.Done():
			break sampling
		case <-warmDone:
			read()
			rep.GoroutinesWarm = rep.Samples[len(rep.Samples)-1].Goroutines
		case <-tick.C:
			read()
		}
	}
	tick.Stop()
	load.Wait()
	read()
	rep.GoroutinesEnd = rep.Samples[len(rep.Samples)-1].Goroutines
	rep.Idling = int(idling.Load())
	rep.Acked, rep.Refused, rep.Fetched = acked.Load(), refused.Load(), fetched.Load()

	for _, c := range idlers {
		c.Close()
	}
	watchers.Wait()
	close(events)

	// Every acknowledged message is there: each account's INBOX holds what was
	// acknowledged for it.
	for i, u := range srv.users {
		n, err := countMessages(ctx, srv, u)
		if err != nil {
			fail(err)
			break
		}
		rep.Fetchable += int64(n)
		if want := ackedBy[i].Load(); int64(n) != want {
			fail(fmt.Errorf("%s holds %d messages, %d were acknowledged", u, n, want))
		}
	}
	// Closed connections must leave nothing behind on the server.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		g, err := scrapeGoroutines(ctx, metricsURL)
		if err != nil {
			return nil, err
		}
		rep.GoroutinesAfter = g
		if g <= rep.GoroutinesBefore+10 || time.Now().After(deadline) {
			break
		}
	}
	rep.RSSSlope, rep.AnonSlope = slopes(rep.Samples, p.warmup.Seconds())

	if err := srv.stop(); err != nil {
		fail(err)
	} else if err := srv.admin(ctx, "", "verify"); err != nil {
		fail(err)
	} else {
		rep.VerifyOK = true
	}
	if e := firstErr.Load(); e != nil {
		rep.FirstError = *e
	}
	return rep, nil
}

// fetchNewest fetches the whole of the newest n messages in user's INBOX and
// returns how many it fetched.
func fetchNewest(ctx context.Context, srv *benchServer, user string, n int) (int, error) {
	c, exists, err := openInbox(ctx, srv, user)
	if err != nil || exists == 0 {
		return 0, err
	}
	defer c.Close()
	rep, err := c.cmd(nil, "FETCH %d:* (UID BODY.PEEK[])", max(1, exists-n+1))
	if err != nil {
		return 0, err
	}
	_, _ = c.cmd(nil, "LOGOUT")
	return rep.Untagged, nil
}

// countMessages is the number of messages in user's INBOX, as SEARCH ALL finds them.
func countMessages(ctx context.Context, srv *benchServer, user string) (int, error) {
	c, _, err := openInbox(ctx, srv, user)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	n, _, err := c.searchCount("ALL")
	return n, err
}

// openInbox logs in as user on a new connection and selects INBOX.
func openInbox(ctx context.Context, srv *benchServer, user string) (*imapConn, int, error) {
	c, err := dialIMAP(ctx, srv.addr.IMAPS, "", 30*time.Second)
	if err != nil {
		return nil, 0, err
	}
	if err := c.login(user, srv.passwords[user]); err != nil {
		c.Close()
		return nil, 0, err
	}
	exists, _, err := c.selectBox("INBOX")
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, exists, nil
}

// scrapeGoroutines reads go_goroutines from the server's metrics.
func scrapeGoroutines(ctx context.Context, url string) (int, error) {
	body, err := getMetrics(ctx, url)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("parse go_goroutines: %w", err)
			}
			return int(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics: %w", err)
	}
	return 0, errors.New("scrape goroutines: no go_goroutines in the metrics")
}

// slopes fits RSS and RssAnon over time (least squares) for the samples from
// warmup on and returns the slopes in MiB per minute.
func slopes(samples []soakSample, warmup float64) (rss, anon float64) {
	fit := func(y func(soakSample) float64) float64 {
		var n, sx, sy, sxx, sxy float64
		for _, s := range samples {
			if s.At < warmup {
				continue
			}
			x, v := s.At/60, y(s)/(1<<20)
			n++
			sx += x
			sy += v
			sxx += x * x
			sxy += x * v
		}
		if d := n*sxx - sx*sx; n >= 2 && d != 0 {
			return (n*sxy - sx*sy) / d
		}
		return 0
	}
	return fit(func(s soakSample) float64 { return float64(s.RSS) }), fit(func(s soakSample) float64 { return float64(s.Anon) })
}

func printSoak(w io.Writer, r *soakReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	first, last := r.Samples[0], r.Samples[len(r.Samples)-1]
	fmt.Fprintf(tw, "load\t%.0f s (warm-up %.0f s), %d idling connections (%d at the end), %d accounts, %.0f msg/s\n", r.Duration, r.Warmup, r.Conns, r.Idling, r.Users, r.Rate)
	fmt.Fprintf(tw, "messages\t%d acknowledged, %d refused, %d fetchable at the end, %d fetched during the load\n", r.Acked, r.Refused, r.Fetchable, r.Fetched)
	fmt.Fprintf(tw, "RSS\t%.1f MiB at the start, %.1f MiB at the end; slope after warm-up %+.2f MiB/min (anon %+.2f)\n", mb(first.RSS), mb(last.RSS), r.RSSSlope, r.AnonSlope)
	fmt.Fprintf(tw, "goroutines\t%d before, %d warm, %d at the end, %d after the clients left\n", r.GoroutinesBefore, r.GoroutinesWarm, r.GoroutinesEnd, r.GoroutinesAfter)
	fmt.Fprintf(tw, "verify\t%v\n", map[bool]string{true: "store is consistent", false: "FAILED"}[r.VerifyOK])
	if r.FirstError != "" {
		fmt.Fprintf(tw, "first error\t%s\n", r.FirstError)
	}
	return tw.Flush()
}
