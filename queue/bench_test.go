package queue

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coibox/coibox/dkim"
	"github.com/coibox/coibox/store"
)

// BenchmarkOutbound measures messages per second from the queue to local SMTP sinks,
// through Run as in production: MX lookup, STARTTLS with a verified certificate, one
// transaction per message, the durable store update after each 250. "cpu-µs/msg" is
// the process's CPU time per message, sink included; the difference between the
// signer variants is the cost of signing (dkim signs with Ed25519 and RSA-2048).
func BenchmarkOutbound(b *testing.B) {
	keys := dkim.NewKeyStore(b.TempDir())
	if _, err := keys.Ensure("a.test"); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		domains int
		signer  Signer
		backlog int
	}{
		{"domains=1/signer=none", 1, nil, 0},
		{"domains=1/signer=dkim", 1, keys, 0},
		{"domains=8/signer=none", 8, nil, 0},
		{"domains=8/signer=dkim", 8, keys, 0},
		// Messages waiting for a retry must not slow down the ones being sent.
		{"domains=1/signer=none/backlog=20000", 1, nil, 20000},
	} {
		b.Run(bc.name, func(b *testing.B) { benchOutbound(b, bc.domains, bc.signer, bc.backlog) })
	}
}

func benchOutbound(b *testing.B, domains int, signer Signer, backlog int) {
	e := newEnv(b, func(o *Options) {
		o.Logger = slog.New(slog.DiscardHandler)
		o.Signer = signer
		o.Now = time.Now
	})
	var sinks []*sink
	var rcpts []string
	for i := range domains {
		d := fmt.Sprintf("d%d.test", i)
		cert := e.ca.Leaf(b, "mx."+d)
		sinks = append(sinks, e.mx(d, fmt.Sprintf("192.0.2.%d", 100+i), sinkOpts{cert: &cert}))
		rcpts = append(rcpts, "bob@"+d)
	}
	// A chat-sized message: Autocrypt header and an encrypted body of about 3 KB.
	body := []byte(message("alice@a.test", "bob@d0.test", "bench") +
		"Autocrypt: addr=alice@a.test; keydata=" + strings.Repeat("mDMEZ", 80) + "\r\n\r\n" +
		strings.Repeat("wV4DaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=\r\n", 56))

	// Fill the queue in one transaction, outside the timing. The backlog is due in a
	// day, as if its destination had been down.
	err := e.st.Write(e.ctx, func(tx *store.Tx) error {
		for range backlog {
			o := &store.Outbound{Sender: "alice@a.test", Recipients: []string{"bob@down.test"}}
			if _, err := tx.Enqueue(body, o, time.Now().Add(24*time.Hour)); err != nil {
				return err
			}
		}
		for i := range b.N {
			o := &store.Outbound{Sender: "alice@a.test", Recipients: []string{rcpts[i%len(rcpts)]}}
			if _, err := tx.Enqueue(body, o, e.clk.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	go func() { done <- e.q.Run(ctx) }()
	for {
		n := 0
		for _, s := range sinks {
			n += s.count()
		}
		if n >= b.N {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Delivered is not finished: the store must have recorded every outcome.
	for {
		due, err := e.st.QueueDue(e.ctx, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if len(due) == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
