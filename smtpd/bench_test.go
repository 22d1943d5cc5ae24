package smtpd_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/smtpd"
	"github.com/coibox/coibox/store"
)

// BenchmarkIngest4KB measures durable deliveries of 4 KB messages over loopback SMTP
// into a real store: every 250 is sent only after the message's commit is fsynced.
// Each client keeps one connection and pipelines MAIL, RCPT and DATA, as an MTA would.
// Reported: msgs/s, and process CPU per message (server and clients together).
func BenchmarkIngest4KB(b *testing.B) {
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) { benchIngest(b, conc) })
	}
}

const benchAccounts = 8

func benchIngest(b *testing.B, conc int) {
	ctx := context.Background()
	st, err := store.Open(ctx, b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AddDomain(ctx, "example.org", false); err != nil {
		b.Fatal(err)
	}
	for i := range benchAccounts {
		if _, err := st.AddAccount(ctx, fmt.Sprintf("user%d@example.org", i), "password"); err != nil {
			b.Fatal(err)
		}
	}
	// Logging on, as in production, into a sink.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := smtpd.New(smtpd.Options{
		Kind:                smtpd.MX,
		Hostname:            "mx.example.org",
		Pipeline:            deliver.New(st, deliver.Options{Hostname: "mx.example.org", Logger: log}),
		Store:               st,
		MaxConnectionsPerIP: 1000,
		Logger:              log,
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ctx, l) //nolint:errcheck // ends with Shutdown
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	body := benchMessage(4096)
	clients := make([]*benchClient, conc)
	for i := range clients {
		if clients[i], err = newBenchClient(l.Addr().String()); err != nil {
			b.Fatal(err)
		}
		defer clients[i].conn.Close()
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				rcpt := fmt.Sprintf("user%d@example.org", (int(n)+i)%benchAccounts)
				if err := c.send(rcpt, body); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}

func benchMessage(size int) []byte {
	var sb strings.Builder
	sb.WriteString("From: Someone <someone@remote.example>\r\nTo: user@example.org\r\nSubject: benchmark\r\n" +
		"Message-ID: <bench@remote.example>\r\nDate: Sun, 01 Mar 2026 12:00:00 +0000\r\n\r\n")
	line := strings.Repeat("0123456789abcdef", 4)[:62] + "\r\n"
	for sb.Len() < size {
		sb.WriteString(line)
	}
	return []byte(sb.String()[:size-2] + "\r\n")
}

type benchClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

func newBenchClient(addr string) (*benchClient, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &benchClient{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	if err := c.expect("220"); err != nil {
		return nil, err
	}
	c.w.WriteString("EHLO bench.example\r\n")
	c.w.Flush()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(line, "250 ") {
			return c, nil
		}
	}
}

func (c *benchClient) expect(code string) error {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, code) {
		return fmt.Errorf("want %s, got %q", code, line)
	}
	return nil
}

func (c *benchClient) send(rcpt string, body []byte) error {
	fmt.Fprintf(c.w, "MAIL FROM:<someone@remote.example>\r\nRCPT TO:<%s>\r\nDATA\r\n", rcpt)
	if err := c.w.Flush(); err != nil {
		return err
	}
	for _, code := range []string{"250", "250", "354"} {
		if err := c.expect(code); err != nil {
			return err
		}
	}
	c.w.Write(body) // no line starts with a dot: nothing to stuff
	c.w.WriteString(".\r\n")
	if err := c.w.Flush(); err != nil {
		return err
	}
	return c.expect("250")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
