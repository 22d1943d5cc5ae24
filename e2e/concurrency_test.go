package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
)

// ingest is a load of MX deliveries: conns connections at once, each from its own
// loopback address (as many peers would), each sending messages in turn over one
// session to rcpts round-robin.
type ingest struct {
	addr   string
	conns  int
	prefix string // of Message-IDs, so that runs never share one
	// perConn is how many messages each connection sends; 0 means until the context
	// ends or the connection fails.
	perConn int
	// subnet is the first three octets of the source addresses, e.g. "127.0.1".
	subnet string
	rcpts  []string
	size   int
}

// ingestResult is what the clients saw.
type ingestResult struct {
	acked   ackLog // Message-IDs answered 250 after DATA
	refused []string
	errs    []error
}

// msgID names message i of connection c.
func (in *ingest) msgID(c, i int) string {
	return fmt.Sprintf("%s-%d-%d@client.e2e.test", in.prefix, c, i)
}

// run sends the load and returns when every connection is done.
func (in *ingest) run(ctx context.Context) *ingestResult {
	res := &ingestResult{}
	in.runInto(ctx, res)
	return res
}

// runInto is run with a result the caller can watch while the load runs (res.acked).
func (in *ingest) runInto(ctx context.Context, res *ingestResult) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := range in.conns {
		wg.Go(func() {
			refused, err := in.conn(ctx, c, &res.acked)
			mu.Lock()
			defer mu.Unlock()
			res.refused = append(res.refused, refused...)
			if err != nil {
				res.errs = append(res.errs, fmt.Errorf("connection %d: %w", c, err))
			}
		})
	}
	wg.Wait()
}

// conn runs one connection's share and returns the replies that refused a message.
func (in *ingest) conn(ctx context.Context, c int, acked *ackLog) ([]string, error) {
	cl, greet, err := testutil.DialSMTP(ctx, in.addr, testutil.SMTPDialOptions{
		LocalIP: fmt.Sprintf("%s.%d", in.subnet, c+1),
		Timeout: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if greet.Code != 220 {
		return nil, fmt.Errorf("greeting %s", greet)
	}
	if r, err := cl.Hello(fmt.Sprintf("peer%d.client.e2e.test", c)); err != nil || r.Code != 250 {
		return nil, fmt.Errorf("EHLO: %s %v", r, err)
	}
	var refused []string
	for i := 0; in.perConn == 0 || i < in.perConn; i++ {
		if ctx.Err() != nil {
			break
		}
		id := in.msgID(c, i)
		rcpt := in.rcpts[(c+i)%len(in.rcpts)]
		// Half the peers pipeline their commands (RFC 2920), as most MTAs do.
		send := cl.Send
		if c%2 == 0 {
			send = cl.SendPipelined
		}
		r, err := send("sender@example.org", []string{rcpt}, newMessage("sender@example.org", rcpt, id, in.size))
		if err != nil {
			return refused, fmt.Errorf("message %s: %w", id, err)
		}
		if r.Code != 250 {
			refused = append(refused, id+": "+r.String())
			continue
		}
		acked.add(id)
	}
	if _, err := cl.Cmd("QUIT"); err != nil && ctx.Err() == nil {
		return refused, fmt.Errorf("QUIT: %w", err)
	}
	return refused, nil
}

// TestConcurrentIngest delivers 1,000 messages over 50 simultaneous MX connections and
// checks that every one was accepted and is stored exactly once: no message lost or
// doubled by the group-committing writer under concurrency.
func TestConcurrentIngest(t *testing.T) {
	users := []string{"alice", "bob", "carol", "dave"}
	s := startServer(t, options{users: users})
	rcpts := make([]string, len(users))
	for i, u := range users {
		rcpts[i] = u + "@" + domain
	}
	in := &ingest{addr: s.addr.SMTP, conns: 50, perConn: 20, prefix: "conc", subnet: "127.0.1", rcpts: rcpts, size: 2000}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	res := in.run(ctx)
	elapsed := time.Since(start)
	if err := errors.Join(res.errs...); err != nil {
		t.Fatalf("ingest failed: %v", err)
	}
	if len(res.refused) > 0 {
		t.Fatalf("%d messages refused, e.g. %s", len(res.refused), res.refused[0])
	}
	acked := res.acked.ids()
	if len(acked) != 1000 {
		t.Fatalf("%d messages acknowledged, want 1000", len(acked))
	}
	t.Logf("1000 messages over 50 connections in %v (%.0f/s)", elapsed.Round(time.Millisecond), 1000/elapsed.Seconds())

	counts := map[string]int{}
	total := 0
	for _, rc := range rcpts {
		msgs := s.inbox(t, rc)
		total += len(msgs)
		for id, n := range countByMessageID(msgs) {
			counts[id] += n
		}
	}
	for _, id := range acked {
		if n := counts["<"+id+">"]; n != 1 {
			t.Errorf("message %s stored %d times, want 1", id, n)
		}
	}
	if total != 1000 {
		t.Errorf("store holds %d messages, want 1000", total)
	}
	s.verify(t)
}
