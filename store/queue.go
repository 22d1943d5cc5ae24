package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// QueueRcpt states.
const (
	RcptPending   = "pending"
	RcptDelivered = "delivered"
	RcptFailed    = "failed"
)

// QueueEntry is one outbound message and its recipients.
type QueueEntry struct {
	ID         int64
	Sender     string
	BodyID     int64
	Created    time.Time
	AccountID  int64
	RequireTLS bool
	SMTPUTF8   bool
	EightBit   bool
	Rcpts      []QueueRcpt
}

// QueueRcpt is one recipient of a queued message.
type QueueRcpt struct {
	ID            int64
	QueueID       int64
	Rcpt          string
	Domain        string
	State         string
	Attempts      int
	NextAttempt   time.Time
	LastError     string
	DelayNotified bool
}

func (t *Tx) enqueue(o *Outbound, bodyID int64, now time.Time) (int64, error) {
	res, err := t.exec("INSERT INTO queue (sender, body_id, created, requiretls, smtputf8, eightbit, account_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
		o.Sender, bodyID, now.Unix(), o.RequireTLS, o.SMTPUTF8, o.EightBit, o.AccountID)
	if err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	for _, r := range o.Recipients {
		_, domain, err := SplitAddress(strings.ToLower(r))
		if err != nil {
			return 0, err
		}
		if _, err := t.exec("INSERT INTO queue_rcpts (queue_id, rcpt, domain, next_attempt) VALUES (?, ?, ?, ?)", id, r, domain, now.Unix()); err != nil {
			return 0, fmt.Errorf("enqueue: %w", err)
		}
	}
	if _, err := t.exec("UPDATE bodies SET refcount = refcount + 1 WHERE id = ?", bodyID); err != nil {
		return 0, err
	}
	return id, nil
}

// Enqueue queues a message for remote recipients only.
func (s *Store) Enqueue(ctx context.Context, body []byte, o *Outbound) (int64, error) {
	_, id, err := s.Deliver(ctx, &Delivery{Body: body, Remote: o})
	return id, err
}

// QueueEntries lists queued messages with their recipients; with dueBy non-zero, only
// pending recipients whose next attempt is due by then.
func (s *Store) QueueEntries(ctx context.Context, dueBy time.Time, limit int) ([]QueueEntry, error) {
	q := `SELECT r.id, r.queue_id, r.rcpt, r.domain, r.state, r.attempts, r.next_attempt, r.last_error, r.delay_notified,
		q.sender, q.body_id, q.created, q.account_id, q.requiretls, q.smtputf8, q.eightbit
		FROM queue_rcpts r JOIN queue q ON q.id = r.queue_id`
	var args []any
	if !dueBy.IsZero() {
		q += " WHERE r.state = 'pending' AND r.next_attempt <= ?"
		args = append(args, dueBy.Unix())
	}
	q += " ORDER BY r.queue_id, r.id"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.readRows(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	defer rows.Close()
	var out []QueueEntry
	for rows.Next() {
		var r QueueRcpt
		var e QueueEntry
		var next, created int64
		if err := rows.Scan(&r.ID, &r.QueueID, &r.Rcpt, &r.Domain, &r.State, &r.Attempts, &next, &r.LastError, &r.DelayNotified,
			&e.Sender, &e.BodyID, &created, &e.AccountID, &e.RequireTLS, &e.SMTPUTF8, &e.EightBit); err != nil {
			return nil, fmt.Errorf("list queue: %w", err)
		}
		r.NextAttempt = time.Unix(next, 0)
		if n := len(out); n > 0 && out[n-1].ID == r.QueueID {
			out[n-1].Rcpts = append(out[n-1].Rcpts, r)
			continue
		}
		e.ID = r.QueueID
		e.Created = time.Unix(created, 0)
		e.Rcpts = []QueueRcpt{r}
		out = append(out, e)
	}
	return out, rows.Err()
}

// RcptUpdate records the outcome of a delivery attempt for one recipient.
type RcptUpdate struct {
	ID            int64
	State         string
	NextAttempt   time.Time
	LastError     string
	DelayNotified bool
}

// UpdateRcpts records attempt outcomes; a queue entry whose recipients are all done is
// removed with its body reference. extra, if set, runs in the same transaction (for
// example to enqueue a DSN atomically with the failure it reports).
func (s *Store) UpdateRcpts(ctx context.Context, ups []RcptUpdate, extra func(*Tx) error) error {
	err := s.write(ctx, func(t *Tx) error {
		queues := map[int64]bool{}
		for _, u := range ups {
			var qid int64
			if err := t.queryRow("SELECT queue_id FROM queue_rcpts WHERE id = ?", u.ID).Scan(&qid); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					continue // dropped meanwhile
				}
				return err
			}
			queues[qid] = true
			if _, err := t.exec("UPDATE queue_rcpts SET state = ?, attempts = attempts + 1, next_attempt = ?, last_error = ?, delay_notified = delay_notified OR ? WHERE id = ?",
				u.State, u.NextAttempt.Unix(), u.LastError, u.DelayNotified, u.ID); err != nil {
				return err
			}
		}
		for qid := range queues {
			if err := t.dropQueueIfDone(qid); err != nil {
				return err
			}
		}
		if extra != nil {
			return extra(t)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update queue: %w", err)
	}
	return nil
}

func (t *Tx) dropQueueIfDone(qid int64) error {
	var pending int
	if err := t.queryRow("SELECT count(*) FROM queue_rcpts WHERE queue_id = ? AND state = 'pending'", qid).Scan(&pending); err != nil {
		return err
	}
	if pending > 0 {
		return nil
	}
	return t.dropQueue(qid)
}

func (t *Tx) dropQueue(qid int64) error {
	var body int64
	if err := t.queryRow("SELECT body_id FROM queue WHERE id = ?", qid).Scan(&body); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	}
	if _, err := t.exec("DELETE FROM queue WHERE id = ?", qid); err != nil {
		return err
	}
	if _, err := t.exec("UPDATE bodies SET refcount = refcount - 1 WHERE id = ?", body); err != nil {
		return err
	}
	_, err := t.exec("DELETE FROM bodies WHERE id = ? AND refcount <= 0", body)
	return err
}

// DropQueue removes a queued message without delivering it.
func (s *Store) DropQueue(ctx context.Context, id int64) error {
	if err := s.write(ctx, func(t *Tx) error { return t.dropQueue(id) }); err != nil {
		return fmt.Errorf("drop queue entry %d: %w", id, err)
	}
	return nil
}

// RetryQueue makes a queued message's pending recipients due now.
func (s *Store) RetryQueue(ctx context.Context, id int64) error {
	err := s.write(ctx, func(t *Tx) error {
		return t.execOne("UPDATE queue_rcpts SET next_attempt = ? WHERE queue_id = ? AND state = 'pending'", s.now().Unix(), id)
	})
	if err != nil {
		return fmt.Errorf("retry queue entry %d: %w", id, err)
	}
	return nil
}

// EnqueueTx queues a message inside another write (a DSN alongside a failure).
func (t *Tx) Enqueue(body []byte, o *Outbound, now time.Time) (int64, error) {
	id, err := t.putBody(body)
	if err != nil {
		return 0, err
	}
	return t.enqueue(o, id, now)
}
