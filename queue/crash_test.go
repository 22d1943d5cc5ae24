package queue

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/store"
)

// TestKill9 runs the queue in a child process, kills it with SIGKILL in the middle of
// delivering, five times over, and finishes the queue in a new one: every message
// must arrive, and at most the few that were between the remote's 250 and our commit
// at each kill may arrive twice.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	const total = 300
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Write(ctx, func(tx *store.Tx) error {
		for i := range total {
			body := []byte(message("alice@a.test", "bob@b.test", fmt.Sprintf("m%d", i)))
			if _, err := tx.Enqueue(body, &store.Outbound{Sender: "alice@a.test", Recipients: []string{"bob@b.test"}}, time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	dns := dnstest.New(t)
	dns.Add("b.test. 60 IN MX 10 mx.b.test.\nmx.b.test. 60 IN A 192.0.2.2")
	sink := newSink(t, sinkOpts{})
	sink.data = func() error { time.Sleep(time.Millisecond); return nil } // let the kill land mid-way

	// Kill a child mid-delivery again and again, each after a few more deliveries:
	// each kill may leave up to defaultPerDomain transactions between the remote's
	// 250 and our commit, and must lose nothing.
	const kills = 5
	deadline := time.Now().Add(60 * time.Second)
	var atKill []int
	for k := 1; k <= kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.v")
		cmd.Env = append(os.Environ(), "COIBOX_QUEUE_CHILD="+dir+","+dns.Addr()+","+sink.addr)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for sink.count() < total*k/(kills+1) {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("child %d: only %d messages delivered", k, sink.count())
			}
			time.Sleep(time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		atKill = append(atKill, sink.count())
	}
	if atKill[kills-1] >= total {
		t.Fatal("the children finished before the last kill; nothing was tested")
	}

	// A new queue on the same database finishes the job.
	st, err = store.Open(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := New(st, childOptions(dns.Addr(), sink.addr))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.Run(rctx) }()
	for {
		es, err := st.QueueEntries(ctx, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries left", len(es))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	seen := map[string]int{}
	subj := regexp.MustCompile(`Subject: (m\d+)`)
	for _, m := range sink.received() {
		seen[string(subj.FindSubmatch(m.Data)[1])]++
	}
	dups := 0
	for i := range total {
		n := seen[fmt.Sprintf("m%d", i)]
		if n == 0 {
			t.Errorf("message m%d lost", i)
		}
		dups += max(n-1, 0)
	}
	t.Logf("killed %d times, after %v deliveries; %d duplicates", kills, atKill, dups)
	if dups > kills*defaultPerDomain {
		t.Errorf("%d duplicates, more than the %d transactions that can be in flight at %d kills", dups, kills*defaultPerDomain, kills)
	}
}

// TestKill9Child is the child process of TestKill9.
func TestKill9Child(t *testing.T) {
	env := os.Getenv("COIBOX_QUEUE_CHILD")
	if env == "" {
		t.Skip("only runs as TestKill9's child")
	}
	parts := strings.SplitN(env, ",", 3)
	dir, dnsAddr, sinkAddr := parts[0], parts[1], parts[2]
	st, err := store.Open(context.Background(), dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = New(st, childOptions(dnsAddr, sinkAddr)).Run(context.Background()) // until killed
}

func childOptions(dnsAddr, sinkAddr string) Options {
	return Options{
		Hostname: "mx.a.test",
		Resolver: dnsx.New(dnsAddr),
		Logger:   slog.New(slog.DiscardHandler),
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, sinkAddr)
		},
	}
}
