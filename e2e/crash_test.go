package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestKillDuringIngest checks durability across crashes: while 16 connections deliver
// messages, the server is killed with SIGKILL (no chance to flush anything), restarted
// on the same data, and then every message that had been acknowledged with 250 must be
// stored exactly once. Messages in flight at the kill may be stored or not, but never
// twice, and `coibox verify` must find the store consistent. The kill lands at
// different moments of the ingest in successive rounds, on the same store: after the
// first few acknowledgements, and well into the run.
func TestKillDuringIngest(t *testing.T) {
	users := []string{"alice", "bob"}
	s := startServer(t, options{users: users})
	rcpts := []string{"alice@" + domain, "bob@" + domain}

	acked := map[string]bool{} // over all rounds
	sent := 0
	for round, after := range []int{5, 150, 600} {
		in := &ingest{addr: s.addr.SMTP, conns: 16, prefix: fmt.Sprintf("kill%d", round), subnet: "127.0.3", rcpts: rcpts, size: 3000}
		ctx, cancel := context.WithCancel(t.Context())
		res := &ingestResult{}
		done := make(chan struct{})
		go func() {
			in.runInto(ctx, res)
			close(done)
		}()
		// Kill once the ingest is well under way: counting acknowledgements rather than
		// sleeping puts the kill mid-ingest however fast the machine is.
		deadline := time.Now().Add(30 * time.Second)
		for res.acked.n() < after && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		s.kill(t)
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("round %d: clients did not notice the kill within a minute", round)
		}
		cancel()
		ids := res.acked.ids()
		if len(ids) == 0 {
			t.Fatalf("round %d: no message acknowledged before the kill; errors: %v", round, res.errs)
		}
		if len(res.refused) > 0 {
			t.Errorf("round %d: %d messages refused, e.g. %s", round, len(res.refused), res.refused[0])
		}
		for _, id := range ids {
			acked[id] = true
		}
		sent += len(ids)
		t.Logf("round %d: killed after %d acknowledgements; %d acknowledged in all", round, after, len(ids))

		s.start(t)
		s.verify(t)
		counts := map[string]int{}
		for _, rc := range rcpts {
			for id, n := range countByMessageID(s.inbox(t, rc)) {
				counts[id] += n
			}
		}
		for id := range acked {
			if n := counts["<"+id+">"]; n != 1 {
				t.Errorf("after round %d: acknowledged message %s stored %d times, want 1", round, id, n)
			}
		}
		extra := 0
		for id, n := range counts {
			if n > 1 {
				t.Errorf("after round %d: message %s stored %d times", round, id, n)
			}
			if !acked[strings.Trim(id, "<>")] {
				extra++ // in flight at the kill: committed, but the 250 never arrived
			}
		}
		t.Logf("after round %d: %d acknowledged messages all present once; %d unacknowledged present", round, len(acked), extra)
	}
	if sent == 0 {
		t.Fatal("no message was acknowledged in any round")
	}
}
