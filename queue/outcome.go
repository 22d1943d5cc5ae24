package queue

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/coibox/coibox/internal/ascii"
	"github.com/coibox/coibox/queue/dsn"
	"github.com/coibox/coibox/store"
)

// record stores the outcome of an attempt: delivered recipients are done, permanent
// failures and expired ones fail with a DSN to the sender, temporary failures are
// rescheduled (with a delay notice once they have waited DelayNotice). The DSN is
// queued in the same transaction as the failure it reports, so a crash can neither
// lose it nor send it for a failure that was not recorded.
func (q *Queue) record(ctx context.Context, j *job, results []result) error {
	if len(results) == 0 {
		return nil
	}
	now := q.opts.Now()
	e := &j.entry
	expiry := e.Created.Add(q.lifetime(e.Sender))
	bounce := e.Sender != "" // never bounce a bounce (RFC 5321 6.1)

	var ups []store.RcptUpdate
	var notes []dsn.Recipient
	for _, r := range results {
		up := store.RcptUpdate{ID: r.rcpt.ID, NextAttempt: now, LastError: lastError(r), DelayNotified: r.rcpt.DelayNotified}
		note := dsn.Recipient{
			FinalRecipient: r.rcpt.Rcpt, Status: r.status, RemoteMTA: r.remote,
			DiagnosticCode: r.diag, LastAttempt: now,
		}
		outcome := ""
		switch {
		case r.kind == delivered:
			up.State, up.LastError, outcome = store.RcptDelivered, "", "delivered"
			q.log.Info("queue: delivered", "queue_id", e.ID, "rcpt", r.rcpt.Rcpt, "mx", r.remote, "reply", r.diag)
		case r.kind == permanent:
			up.State, outcome = store.RcptFailed, "bounced"
			note.Action = dsn.Failed
			q.log.Info("queue: bounced", "queue_id", e.ID, "rcpt", r.rcpt.Rcpt, "mx", r.remote, "reply", r.diag)
		case !now.Before(expiry):
			up.State, outcome = store.RcptFailed, "expired"
			note.Action, note.Status = dsn.Failed, "5.4.7" // delivery time expired (RFC 3463)
			q.log.Info("queue: giving up", "queue_id", e.ID, "rcpt", r.rcpt.Rcpt, "mx", r.remote, "reply", r.diag, "age", now.Sub(e.Created).Round(time.Second))
		default:
			up.State, outcome = store.RcptPending, "deferred"
			up.NextAttempt = q.nextAttempt(now, r.rcpt.Attempts, expiry)
			if bounce && q.opts.DelayNotice > 0 && !r.rcpt.DelayNotified && now.Sub(e.Created) >= q.opts.DelayNotice {
				note.Action, note.WillRetryUntil = dsn.Delayed, expiry
				up.DelayNotified = true
			}
			q.log.Info("queue: deferred", "queue_id", e.ID, "rcpt", r.rcpt.Rcpt, "mx", r.remote, "reply", r.diag, "next", up.NextAttempt)
		}
		if q.opts.Metrics.Recipient != nil {
			q.opts.Metrics.Recipient(outcome)
		}
		ups = append(ups, up)
		if bounce && note.Action != "" {
			notes = append(notes, note)
		}
	}

	var report []byte
	if len(notes) > 0 {
		var err error
		if report, err = q.buildDSN(ctx, e, notes, now); err != nil {
			// The recipients' state matters more than the notice: record it anyway.
			q.log.Error("queue: build DSN", "queue_id", e.ID, "err", err)
			report = nil
		}
	}
	// Recording must not be cut short by shutdown: the remote already answered.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	queued := false
	if report != nil {
		handled := false
		if q.opts.LocalDeliver != nil {
			// Delivered before the failure is recorded: a crash in between repeats
			// the notice rather than losing it.
			var err error
			handled, err = q.opts.LocalDeliver(wctx, e.Sender, report)
			if err != nil {
				q.log.Warn("queue: local delivery of DSN failed, queueing it", "queue_id", e.ID, "sender", e.Sender, "err", err)
				handled = false
			}
		}
		queued = !handled
	}
	err := q.st.UpdateRcpts(wctx, ups, func(tx *store.Tx) error {
		if !queued {
			return nil
		}
		o := &store.Outbound{Sender: "", Recipients: []string{e.Sender}, SMTPUTF8: !ascii.Is(e.Sender), EightBit: !ascii.Is(string(report))}
		_, err := tx.Enqueue(report, o, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("record attempt of queue entry %d: %w", e.ID, err)
	}
	if queued {
		q.Kick()
	}
	if report != nil && q.opts.Metrics.DSN != nil {
		for _, n := range notes {
			q.opts.Metrics.DSN(string(n.Action))
		}
	}
	return nil
}

func lastError(r result) string {
	if r.remote != "" && !strings.Contains(r.diag, r.remote) {
		return r.remote + ": " + r.diag
	}
	return r.diag
}

// lifetime is how long messages from sender are retried.
func (q *Queue) lifetime(sender string) time.Duration {
	if q.opts.LifetimeFor != nil {
		_, domain, _ := store.SplitAddress(strings.ToLower(sender))
		if d := q.opts.LifetimeFor(domain); d > 0 {
			return d
		}
	}
	return q.opts.Lifetime
}

// nextAttempt schedules the retry after attempts failed attempts: MinRetry doubling
// per attempt up to MaxRetry, ±10% so that messages deferred together do not all
// come back at once, and never later than the expiry, where one last try decides.
func (q *Queue) nextAttempt(now time.Time, attempts int, expiry time.Time) time.Time {
	d := q.opts.MinRetry
	for i := 0; i < attempts && d < q.opts.MaxRetry; i++ {
		d *= 2
	}
	d = min(d, q.opts.MaxRetry)
	d = time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
	next := now.Add(d)
	if next.After(expiry) {
		next = expiry
	}
	return next
}

// buildDSN writes the notification for notes about entry e.
func (q *Queue) buildDSN(ctx context.Context, e *store.QueueEntry, notes []dsn.Recipient, now time.Time) ([]byte, error) {
	var header []byte
	if body, err := q.st.Body(ctx, e.BodyID); err == nil {
		header = dsn.HeaderSection(body)
	}
	return dsn.Build(&dsn.Message{
		ReportingMTA:   q.opts.Hostname,
		To:             e.Sender,
		Date:           now,
		ArrivalDate:    e.Created,
		Recipients:     notes,
		OriginalHeader: header,
	})
}
