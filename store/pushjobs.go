package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// PushJob is one pending notification for one device token (chatmail spec §9): the
// notifier POSTs the token until it gets an answer that ends the job.
type PushJob struct {
	ID        int64
	AccountID int64
	Token     string
	// Triggered is the latest delivery folded into the job.
	Triggered time.Time
	// Triggers counts the deliveries folded into the job. PushJobDone and PushJobDrop
	// take the value read with the job: if a delivery was folded in after that read,
	// the attempt may have been sent before that delivery was committed, so the job is
	// armed again instead of deleted.
	Triggers int64
	// Attempts counts the failed attempts since the job was (re)armed.
	Attempts int
	// FirstAttempt is when the first of them was made; zero while Attempts is 0.
	FirstAttempt time.Time
	NextAttempt  time.Time
}

// EnqueuePush makes a push job for one of an account's tokens, due now, unless the
// token already has one: then the delivery is folded into that job (spec §9: no
// second job for a token whose job is still pending). It reports whether a job was
// made. A token the account does not have (deleted meanwhile) gets no job.
func (s *Store) EnqueuePush(ctx context.Context, accountID int64, token string, now time.Time) (bool, error) {
	var made bool
	err := s.write(ctx, func(t *Tx) error {
		var err error
		made, err = t.EnqueuePush(accountID, token, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("enqueue push: %w", err)
	}
	return made, nil
}

// EnqueuePush is Store.EnqueuePush inside a larger write, so that a delivery to an
// account with several devices costs one write, not one per token.
func (t *Tx) EnqueuePush(accountID int64, token string, now time.Time) (bool, error) {
	res, err := t.exec("UPDATE push_jobs SET triggers = triggers + 1, triggered = ? WHERE account_id = ? AND token = ?",
		now.Unix(), accountID, token)
	if err != nil {
		return false, fmt.Errorf("fold push job: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return false, nil
	}
	// Only for a token that exists: the foreign key would refuse the row otherwise,
	// and a token deleted since the caller listed it needs no notification.
	res, err = t.exec(`INSERT INTO push_jobs (account_id, token, triggered, next_attempt)
		SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM push_tokens WHERE account_id = ? AND token = ?)`,
		accountID, token, now.Unix(), now.Unix(), accountID, token)
	if err != nil {
		return false, fmt.Errorf("insert push job: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

const pushJobColumns = "id, account_id, token, triggered, triggers, attempts, first_attempt, next_attempt"

func scanPushJob(r rowScanner) (PushJob, error) {
	var j PushJob
	var triggered, first, next int64
	err := r.Scan(&j.ID, &j.AccountID, &j.Token, &triggered, &j.Triggers, &j.Attempts, &first, &next)
	j.Triggered = time.Unix(triggered, 0)
	if first != 0 {
		j.FirstAttempt = time.Unix(first, 0)
	}
	j.NextAttempt = time.Unix(next, 0)
	return j, err
}

// DuePushJobs lists the jobs due by now: at most limit awaiting their first attempt
// and at most limit awaiting a retry, each kind oldest first. Each kind is limited on
// its own because the notifier has separate workers for them, and a backlog of one
// must not hide the other.
func (s *Store) DuePushJobs(ctx context.Context, now time.Time, limit int) ([]PushJob, error) {
	q := `SELECT * FROM (SELECT ` + pushJobColumns + ` FROM push_jobs WHERE attempts = 0 AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?)
		UNION ALL
		SELECT * FROM (SELECT ` + pushJobColumns + ` FROM push_jobs WHERE attempts > 0 AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?)
		ORDER BY next_attempt, id`
	return collect(ctx, s, "list due push jobs", q, scanPushJob, now.Unix(), limit, now.Unix(), limit)
}

// NextPushAttempt is the earliest next attempt of a job later than after, or the zero
// time when there is none: the notifier sleeps until then.
func (s *Store) NextPushAttempt(ctx context.Context, after time.Time) (time.Time, error) {
	var next sql.NullInt64
	if err := s.readRow(ctx, "SELECT min(next_attempt) FROM push_jobs WHERE next_attempt > ?", after.Unix()).Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("find next push attempt: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return time.Unix(next.Int64, 0), nil
}

// PushJobDone ends a job whose notification was accepted. triggers is the job's
// PushJob.Triggers as listed before the attempt; if a delivery was folded in since,
// the job is armed again, due at once, as if that delivery had made it.
func (s *Store) PushJobDone(ctx context.Context, id, triggers int64) error {
	if err := s.write(ctx, func(t *Tx) error { return t.finishPushJob(id, triggers) }); err != nil {
		return fmt.Errorf("finish push job %d: %w", id, err)
	}
	return nil
}

// PushJobDrop gives a job up (too many failures, too old); triggers as for
// PushJobDone, and a delivery folded in since the listing arms the job again.
func (s *Store) PushJobDrop(ctx context.Context, id, triggers int64) error {
	if err := s.write(ctx, func(t *Tx) error { return t.finishPushJob(id, triggers) }); err != nil {
		return fmt.Errorf("drop push job %d: %w", id, err)
	}
	return nil
}

func (t *Tx) finishPushJob(id, triggers int64) error {
	res, err := t.exec("DELETE FROM push_jobs WHERE id = ? AND triggers = ?", id, triggers)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	// Either gone (its token was deleted: nothing to do) or a later delivery was
	// folded in while the attempt was under way: that delivery's notification may not
	// have been sent yet, so it becomes a fresh job.
	_, err = t.exec("UPDATE push_jobs SET attempts = 0, first_attempt = 0, next_attempt = triggered WHERE id = ?", id)
	return err
}

// PushJobRetry records a failed attempt made at attempted and schedules the next one
// at next (rounded up to the second, so that a retry never comes early). A job that
// is gone meanwhile (its token was deleted) stays gone.
func (s *Store) PushJobRetry(ctx context.Context, id int64, attempted, next time.Time) error {
	nextUnix := next.Unix()
	if next.After(time.Unix(nextUnix, 0)) {
		nextUnix++
	}
	err := s.write(ctx, func(t *Tx) error {
		_, err := t.exec(`UPDATE push_jobs SET attempts = attempts + 1, next_attempt = ?,
			first_attempt = CASE WHEN first_attempt = 0 THEN ? ELSE first_attempt END WHERE id = ?`,
			nextUnix, attempted.Unix(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("retry push job %d: %w", id, err)
	}
	return nil
}
