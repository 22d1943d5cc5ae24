package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/internal/human"
	"github.com/coibox/coibox/queue"
	"github.com/coibox/coibox/store"
)

// cmdQueue is `coibox queue list|show ID|retry ID|drop ID`: the outbound queue as the
// store holds it, readable while the server runs (SQLite WAL lets both work at once).
func cmdQueue(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("queue")
	fs.StringVar(&configPath, "config", configPath, "config file")
	verb, pos, err := subcommand(fs, args, map[string][2]int{
		"list": {0, 0}, "show": {1, 1}, "retry": {1, 1}, "drop": {1, 1},
	})
	if err != nil {
		return err
	}
	var id int64
	if verb != "list" {
		if id, err = strconv.ParseInt(strings.TrimPrefix(pos[0], "#"), 10, 64); err != nil || id <= 0 {
			return usagef("queue %s: %q is not a queue entry id (see coibox queue list)", verb, pos[0])
		}
	}
	return withStore(ctx, configPath, func(cfg *config.Config, s *store.Store) error {
		// The queue is only used for its admin methods here: it never runs.
		q := queue.New(s, queue.Options{Hostname: cfg.Hostname, Logger: slog.New(slog.DiscardHandler)})
		now := time.Now()
		switch verb {
		case "list":
			entries, err := q.List(ctx)
			if err != nil {
				return err
			}
			return printQueueList(e.stdout, entries, now)
		case "show":
			entry, err := q.Show(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("queue entry %d does not exist (delivered, bounced or dropped)", id)
			}
			if err != nil {
				return err
			}
			printQueueEntry(e.stdout, entry, now)
		case "retry":
			if err := q.Retry(ctx, id); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("queue entry %d does not exist or has no recipient left to try", id)
				}
				return err
			}
			// This process cannot wake a running server's queue, which sleeps until
			// its next planned attempt but never longer than ten minutes.
			fmt.Fprintf(e.stdout, "queue entry %d: its pending recipients are due now; a running server tries them at its next queue scan (within a minute)\n", id)
		case "drop":
			entry, err := q.Show(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("queue entry %d does not exist (delivered, bounced or dropped)", id)
			}
			if err != nil {
				return err
			}
			if err := q.Drop(ctx, id); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("queue entry %d does not exist (delivered, bounced or dropped)", id)
				}
				return err
			}
			var pending []string
			for _, r := range entry.Rcpts {
				if r.State == store.RcptPending {
					pending = append(pending, r.Rcpt)
				}
			}
			fmt.Fprintf(e.stdout, "dropped queue entry %d; not delivered to %s; the sender is not told\n", id, strings.Join(pending, ", "))
		}
		return nil
	})
}

// listErrorWidth is how much of a recipient's last error the list shows; queue show
// has all of it.
const listErrorWidth = 72

// printQueueList writes one line per recipient, so that a message to several domains
// shows where each stands.
func printQueueList(w io.Writer, entries []store.QueueEntry, now time.Time) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintln(w, "The queue is empty.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tQUEUED\tSENDER\tRECIPIENT\tSTATE\tTRIES\tNEXT TRY\tLAST ERROR")
	for _, e := range entries {
		for _, r := range e.Rcpts {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.Created.Local().Format(time.DateTime),
				orNull(e.Sender), r.Rcpt, r.State, r.Attempts, nextTry(r, now), clipText(oneLine(r.LastError), listErrorWidth))
		}
	}
	return tw.Flush()
}

// printQueueEntry writes everything known about one queued message.
func printQueueEntry(w io.Writer, e *queue.Entry, now time.Time) {
	fmt.Fprintf(w, "Queue entry %d\n", e.ID)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(w, "  %-12s %s\n", name+":", value)
		}
	}
	field("queued", fmt.Sprintf("%s (%s ago)", e.Created.Local().Format(time.DateTime), now.Sub(e.Created).Round(time.Second)))
	field("sender", orNull(e.Sender))
	field("from", e.From)
	field("subject", e.Subject)
	field("message-id", e.MessageID)
	field("size", human.Bytes(int64(e.Size)))
	if e.RequireTLS {
		field("requiretls", "yes: only over TLS with a valid certificate")
	}
	fmt.Fprintf(w, "Recipients:\n")
	for _, r := range e.Rcpts {
		state := r.State
		if r.State == store.RcptPending {
			state += ", next try " + nextTry(r, now)
		}
		fmt.Fprintf(w, "  %s: %s, %d attempt(s)", r.Rcpt, state, r.Attempts)
		if r.DelayNotified {
			fmt.Fprintf(w, ", sender told of the delay")
		}
		fmt.Fprintln(w)
		if r.LastError != "" {
			fmt.Fprintf(w, "    last error: %s\n", oneLine(r.LastError))
		}
	}
}

// nextTry says when a pending recipient is tried next, relative to now.
func nextTry(r store.QueueRcpt, now time.Time) string {
	if r.State != store.RcptPending {
		return "-"
	}
	d := r.NextAttempt.Sub(now).Round(time.Second)
	if d <= 0 {
		return "now"
	}
	return "in " + d.String()
}

func orNull(sender string) string {
	if sender == "" {
		return "<> (a bounce)"
	}
	return sender
}

// oneLine joins a multi-line SMTP reply so that it stays on one output line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clipText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
