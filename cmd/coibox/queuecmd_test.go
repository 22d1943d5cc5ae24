package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
	"github.com/coibox/coibox/store"
)

// TestQueueCommands runs `coibox queue` in-process on a store with two queued
// messages, one of them to two domains with an error from a remote server.
func TestQueueCommands(t *testing.T) {
	cfg, dataDir, _ := testutil.ServerConfig(t, "")
	ctx := t.Context()
	s, err := store.Open(ctx, dataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: <alice@example.org>\r\nSubject: Quarterly figures\r\nMessage-ID: <q1@example.org>\r\n\r\nNumbers.\r\n"
	id1, err := s.Enqueue(ctx, []byte(msg), &store.Outbound{Sender: "alice@example.org", Recipients: []string{"bob@b.example", "carol@c.example"}})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.Enqueue(ctx, []byte("Subject: bounce\r\n\r\nx\r\n"), &store.Outbound{Recipients: []string{"dave@d.example"}})
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.QueueEntries(ctx, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bobID int64
	for _, e := range es {
		for _, r := range e.Rcpts {
			if r.Rcpt == "bob@b.example" {
				bobID = r.ID
			}
		}
	}
	longErr := "mx.b.example: 451 4.7.5 MTA-STS policy enforce: certificate for mx.b.example not valid: x509: certificate signed by unknown authority " + strings.Repeat("and more ", 5)
	if err := s.UpdateRcpts(ctx, []store.RcptUpdate{{ID: bobID, State: store.RcptPending, NextAttempt: time.Now().Add(time.Hour), LastError: longErr}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	c := "--config=" + cfg
	for _, st := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // substrings, or regexps after "re:"
		notStdout  []string
		wantStderr string
	}{
		{name: "list", args: []string{"queue", "list", c}, wantStdout: []string{
			"ID  QUEUED", "LAST ERROR",
			fmt.Sprintf(`re:(?m)^%d +\S+ \S+ +alice@example\.org +bob@b\.example +pending +1 +in (59m5\d|1h0m0)s +mx\.b\.example: 451 4\.7\.5 MTA-STS`, id1),
			fmt.Sprintf(`re:(?m)^%d .* +carol@c\.example +pending +0 +now *$`, id1),
			fmt.Sprintf(`re:(?m)^%d .*<> \(a bounce\) +dave@d\.example`, id2),
		}, notStdout: []string{"and more and more and more"}},
		{name: "show", args: []string{"queue", "show", fmt.Sprint(id1), c}, wantStdout: []string{
			fmt.Sprintf("Queue entry %d\n", id1),
			"  sender:      alice@example.org\n",
			"  subject:     Quarterly figures\n",
			"  message-id:  <q1@example.org>\n",
			"  bob@b.example: pending, next try in ",
			"    last error: " + strings.TrimSpace(longErr) + "\n",
			"  carol@c.example: pending, next try now, 0 attempt(s)\n",
		}},
		{name: "show unknown", args: []string{"queue", "show", "9999", c}, wantCode: 1, wantStderr: "queue entry 9999 does not exist"},
		{name: "retry", args: []string{"queue", "retry", fmt.Sprint(id1), c}, wantStdout: []string{fmt.Sprintf("queue entry %d: its pending recipients are due now", id1)}},
		{name: "list after retry", args: []string{"queue", "list", c}, wantStdout: []string{`re:bob@b\.example +pending +1 +now`}},
		{name: "retry unknown", args: []string{"queue", "retry", "9999", c}, wantCode: 1, wantStderr: "queue entry 9999 does not exist or has no recipient left to try"},
		{name: "drop", args: []string{"queue", "drop", "#" + fmt.Sprint(id1), c}, wantStdout: []string{fmt.Sprintf("dropped queue entry %d; not delivered to bob@b.example, carol@c.example; the sender is not told", id1)}},
		{name: "list after drop", args: []string{"queue", "list", c}, wantStdout: []string{"dave@d.example"}, notStdout: []string{"bob@b.example"}},
		{name: "drop again", args: []string{"queue", "drop", fmt.Sprint(id1), c}, wantCode: 1, wantStderr: fmt.Sprintf("queue entry %d does not exist", id1)},
		{name: "drop the last", args: []string{"queue", "drop", fmt.Sprint(id2), c}, wantStdout: []string{"dropped"}},
		{name: "empty", args: []string{"queue", "list", c}, wantStdout: []string{"The queue is empty.\n"}},
		{name: "bad id", args: []string{"queue", "show", "abc", c}, wantCode: 2, wantStderr: `queue show: "abc" is not a queue entry id`},
		{name: "no id", args: []string{"queue", "retry", c}, wantCode: 2, wantStderr: "queue retry: missing argument"},
		{name: "unknown verb", args: []string{"queue", "flush", c}, wantCode: 2, wantStderr: `queue: unknown subcommand "flush"`},
	} {
		t.Run(st.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(t.Context(), &env{stdout: &out, stderr: &errb}, st.args)
			if code != st.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, st.wantCode, out.String(), errb.String())
			}
			for _, w := range st.wantStdout {
				if re, ok := strings.CutPrefix(w, "re:"); ok {
					if !regexp.MustCompile(re).MatchString(out.String()) {
						t.Errorf("stdout does not match %s:\n%s", re, out.String())
					}
				} else if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range st.notStdout {
				if strings.Contains(out.String(), w) {
					t.Errorf("stdout has %q:\n%s", w, out.String())
				}
			}
			if !strings.Contains(errb.String(), st.wantStderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), st.wantStderr)
			}
		})
	}
}

func TestClipText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven chars", 10, "eleven ch…"},
		{"ünïcödé text", 5, "ünïc…"},
	} {
		if got := clipText(tt.in, tt.n); got != tt.want {
			t.Errorf("clipText(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
