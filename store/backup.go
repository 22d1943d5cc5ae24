package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Backup writes a consistent copy of the database to dir/coibox.db while the store
// stays in use: VACUUM INTO reads one snapshot, so concurrent writes neither block it
// nor leak half into it.
func (s *Store) Backup(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("backup: create %s: %w", dir, err)
	}
	dst := filepath.Join(dir, DBFile)
	if _, err := os.Stat(dst); err == nil {
		return "", fmt.Errorf("backup: %s exists; choose an empty directory", dst)
	}
	// The read pool is query-only, which VACUUM INTO refuses; the writer's connection
	// must stay free for deliveries. A connection of its own reads in WAL beside both.
	db, err := sql.Open("sqlite3", "file:"+s.path+"?_busy_timeout=10000")
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return "", fmt.Errorf("backup to %s: %w", dst, err)
	}
	return dst, nil
}

// Problem is one inconsistency Verify found.
type Problem struct {
	What string
	// Account names the account (or accounts, or the queue entry's sender) the
	// problem is in, so an operator knows whom it concerns; "" for the database as a
	// whole.
	Account string
	Detail  string
}

func (p Problem) String() string {
	if p.Account == "" {
		return p.What + ": " + p.Detail
	}
	return p.What + ": " + p.Account + ": " + p.Detail
}

// Parts of Verify's queries naming the account of mailbox b, and of queue entry q.
const (
	mailboxAccount = `coalesce((SELECT address FROM accounts WHERE id = b.account_id), 'account ' || b.account_id || ' (missing)')`
	queueAccount   = `coalesce((SELECT address FROM accounts WHERE id = q.account_id), 'queued mail from <' || q.sender || '>')`
)

// Verify checks the database's integrity and that every counter and reference agrees
// with the rows it summarises. It returns the problems found; none means clean.
func (s *Store) Verify(ctx context.Context) ([]Problem, error) {
	var probs []Problem
	rows, err := s.rdb.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return nil, fmt.Errorf("verify: %w", err)
		}
		if line != "ok" {
			probs = append(probs, Problem{What: "sqlite integrity", Detail: line})
		}
	}
	rows.Close()

	// Each query returns the account a problem concerns, then its detail.
	checks := []struct {
		what, query string
	}{
		{"message without body", `SELECT ` + mailboxAccount + `, 'mailbox ' || b.name || ' uid ' || m.uid FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id LEFT JOIN bodies bo ON bo.id = m.body_id WHERE bo.id IS NULL`},
		{"queue entry without body", `SELECT ` + queueAccount + `, 'queue ' || q.id FROM queue q LEFT JOIN bodies bo ON bo.id = q.body_id WHERE bo.id IS NULL`},
		{"message size", `SELECT ` + mailboxAccount + `, 'mailbox ' || b.name || ' uid ' || m.uid || ': row says ' || m.size || ', body has ' || length(bo.data) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id JOIN bodies bo ON bo.id = m.body_id WHERE m.size != length(bo.data)`},
		{"body refcount", `SELECT coalesce((SELECT group_concat(address, ', ') FROM (SELECT DISTINCT a.address FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id JOIN accounts a ON a.id = b.account_id WHERE m.body_id = bo.id ORDER BY a.address)), 'no account'),
			'body ' || bo.id || ': refcount ' || bo.refcount || ', referenced ' || ((SELECT count(*) FROM messages WHERE body_id = bo.id) + (SELECT count(*) FROM queue WHERE body_id = bo.id)) FROM bodies bo
			WHERE bo.refcount != (SELECT count(*) FROM messages WHERE body_id = bo.id) + (SELECT count(*) FROM queue WHERE body_id = bo.id)`},
		{"mailbox counters", `SELECT x.account, x.name || ': count ' || x.msg_count || '/' || x.n || ', size ' || x.msg_size || '/' || x.sz || ', unseen ' || x.msg_unseen || '/' || x.un || ', deleted ' || x.msg_deleted || '/' || x.del FROM (
			SELECT ` + mailboxAccount + ` AS account, b.name, b.msg_count, b.msg_size, b.msg_unseen, b.msg_deleted,
				count(m.id) AS n, coalesce(sum(m.size), 0) AS sz,
				coalesce(sum((' ' || m.flags || ' ') NOT LIKE '% \Seen %'), 0) AS un,
				coalesce(sum((' ' || m.flags || ' ') LIKE '% \Deleted %'), 0) AS del
			FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id GROUP BY b.id) x
			WHERE x.msg_count != x.n OR x.msg_size != x.sz OR x.msg_unseen != x.un OR x.msg_deleted != x.del`},
		{"account usage", `SELECT a.address, 'bytes ' || a.used_bytes || '/' || coalesce(sum(b.msg_size), 0) || ', messages ' || a.used_msgs || '/' || coalesce(sum(b.msg_count), 0)
			FROM accounts a LEFT JOIN mailboxes b ON b.account_id = a.id GROUP BY a.id
			HAVING a.used_bytes != coalesce(sum(b.msg_size), 0) OR a.used_msgs != coalesce(sum(b.msg_count), 0)`},
		{"uid at or above uidnext", `SELECT ` + mailboxAccount + `, 'mailbox ' || b.name || ' uid ' || m.uid || ' uidnext ' || b.uidnext FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.uid >= b.uidnext`},
		{"modseq above highestmodseq", `SELECT ` + mailboxAccount + `, 'mailbox ' || b.name || ' uid ' || m.uid FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.modseq > b.highestmodseq`},
		{"queue entry without recipients", `SELECT ` + queueAccount + `, 'queue ' || q.id FROM queue q WHERE NOT EXISTS (SELECT 1 FROM queue_rcpts r WHERE r.queue_id = q.id)`},
	}
	for _, c := range checks {
		rows, err := s.rdb.QueryContext(ctx, c.query)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", c.what, err)
		}
		for rows.Next() {
			var acc, d string
			if err := rows.Scan(&acc, &d); err != nil {
				rows.Close()
				return nil, fmt.Errorf("verify %s: %w", c.what, err)
			}
			probs = append(probs, Problem{What: c.what, Account: acc, Detail: strings.TrimSpace(d)})
		}
		rows.Close()
	}
	return probs, nil
}

// Stats are store-wide totals for reports and metrics.
type Stats struct {
	Domains, Accounts, Mailboxes, Messages, Bodies, Queued int64
	BodyBytes                                              int64
}

// Stats counts the store's rows.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	var st Stats
	err := s.rdb.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM domains), (SELECT count(*) FROM accounts), (SELECT count(*) FROM mailboxes),
		(SELECT count(*) FROM messages), (SELECT count(*) FROM bodies), (SELECT count(*) FROM queue), (SELECT coalesce(sum(length(data)), 0) FROM bodies)`).
		Scan(&st.Domains, &st.Accounts, &st.Mailboxes, &st.Messages, &st.Bodies, &st.Queued, &st.BodyBytes)
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	return &st, nil
}

// QueueSummary counts the queued messages and finds the oldest one's arrival (zero
// when the queue is empty), for the admin dashboard.
func (s *Store) QueueSummary(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*), min(created) FROM queue").Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("summarise queue: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, time.Unix(oldest.Int64, 0), nil
}
