package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// NextQueueAttempt returns the earliest next attempt of a pending queue recipient that
// is later than after, or the zero time when there is none. The outbound queue sleeps
// until then; recipients already due are its own business (in flight or waiting for a
// free worker), hence the lower bound.
func (s *Store) NextQueueAttempt(ctx context.Context, after time.Time) (time.Time, error) {
	var next sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, "SELECT min(next_attempt) FROM queue_rcpts WHERE state = 'pending' AND next_attempt > ?", after.Unix()).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next queue attempt: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return time.Unix(next.Int64, 0), nil
}

// QueueDue counts, per destination domain, the pending recipients due by dueBy, so
// that the outbound queue can share its workers fairly among destinations.
func (s *Store) QueueDue(ctx context.Context, dueBy time.Time) (map[string]int, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT domain, count(*) FROM queue_rcpts WHERE state = 'pending' AND next_attempt <= ? GROUP BY domain", dueBy.Unix())
	if err != nil {
		return nil, fmt.Errorf("count due queue recipients: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var d string
		var n int
		if err := rows.Scan(&d, &n); err != nil {
			return nil, fmt.Errorf("count due queue recipients: %w", err)
		}
		out[d] = n
	}
	return out, rows.Err()
}

// QueueEntriesTo is QueueEntries for one destination domain: queued messages with only
// their pending recipients at domain that are due by dueBy, at most limit recipients.
func (s *Store) QueueEntriesTo(ctx context.Context, domain string, dueBy time.Time, limit int) ([]QueueEntry, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT r.id, r.queue_id, r.rcpt, r.domain, r.state, r.attempts, r.next_attempt, r.last_error, r.delay_notified,
		q.sender, q.body_id, q.created, q.account_id, q.requiretls, q.smtputf8, q.eightbit
		FROM queue_rcpts r JOIN queue q ON q.id = r.queue_id
		WHERE r.state = 'pending' AND r.next_attempt <= ? AND r.domain = ?
		ORDER BY r.queue_id, r.id LIMIT ?`, dueBy.Unix(), domain, limit)
	if err != nil {
		return nil, fmt.Errorf("list queue for %s: %w", domain, err)
	}
	defer rows.Close()
	var out []QueueEntry
	for rows.Next() {
		var r QueueRcpt
		var e QueueEntry
		var next, created int64
		if err := rows.Scan(&r.ID, &r.QueueID, &r.Rcpt, &r.Domain, &r.State, &r.Attempts, &next, &r.LastError, &r.DelayNotified,
			&e.Sender, &e.BodyID, &created, &e.AccountID, &e.RequireTLS, &e.SMTPUTF8, &e.EightBit); err != nil {
			return nil, fmt.Errorf("list queue for %s: %w", domain, err)
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
