package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Additions for imapd: reads shaped for IMAP's bulk commands.

// QuotaLimit returns an account's storage quota in bytes with the server default
// applied; 0 means unlimited.
func (s *Store) QuotaLimit(a *Account) int64 {
	if a.Quota < 0 {
		return s.opts.DefaultQuota
	}
	return a.Quota
}

// ScanMessages calls fn for each message of a mailbox among uids (every message when
// uids is nil), ascending by UID. fn gets the same *Message each time, and
// m.Summary is only valid during the call: the scan reads no more than it must, so
// SEARCH over a large mailbox allocates little. fn must not block on I/O, because the
// scan holds one of the store's read connections.
func (s *Store) ScanMessages(ctx context.Context, mailboxID int64, uids []uint32, fn func(m *Message) error) error {
	const q = "SELECT id, uid, modseq, flags, body_id, size, internal_date, summary FROM messages WHERE mailbox_id = ? AND "
	scan := func(clause string, args []any) error {
		rows, err := s.rdb.QueryContext(ctx, q+clause+" ORDER BY uid", append([]any{mailboxID}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var m Message
		var flags sql.RawBytes
		var summary sql.RawBytes
		var date int64
		m.MailboxID = mailboxID
		for rows.Next() {
			if err := rows.Scan(&m.ID, &m.UID, &m.ModSeq, &flags, &m.BodyID, &m.Size, &date, &summary); err != nil {
				return err
			}
			m.Flags = splitFlags(string(flags))
			m.InternalDate = time.Unix(date, 0)
			m.Summary = summary
			if err := fn(&m); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if uids == nil {
		if err := scan("1", nil); err != nil {
			return fmt.Errorf("scan messages: %w", err)
		}
		return nil
	}
	for _, c := range chunks(uids) {
		clause, args := uidClause(c)
		if err := scan(clause, args); err != nil {
			return fmt.Errorf("scan messages: %w", err)
		}
	}
	return nil
}

// UIDBody is one message body, or its first bytes, by UID.
type UIDBody struct {
	UID  uint32
	Data []byte
}

// Bodies returns the bodies of the given messages of a mailbox in one query,
// ascending by UID; limit > 0 returns only each body's first limit bytes (a header).
func (s *Store) Bodies(ctx context.Context, mailboxID int64, uids []uint32, limit int) ([]UIDBody, error) {
	col := "data"
	if limit > 0 {
		col = fmt.Sprintf("substr(data, 1, %d)", limit)
	}
	out := make([]UIDBody, 0, len(uids))
	for _, c := range chunks(uids) {
		clause, args := uidClause(c)
		rows, err := s.rdb.QueryContext(ctx, "SELECT uid, (SELECT "+col+" FROM bodies WHERE bodies.id = body_id) FROM messages WHERE mailbox_id = ? AND "+clause+" ORDER BY uid",
			append([]any{mailboxID}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("read bodies: %w", err)
		}
		for rows.Next() {
			var b UIDBody
			if err := rows.Scan(&b.UID, &b.Data); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read bodies: %w", err)
			}
			out = append(out, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read bodies: %w", err)
		}
	}
	return out, nil
}

// ScanBodies calls fn with the body of each of the given messages, ascending by UID,
// without copying it: body is only valid during the call. It serves SEARCH BODY,
// which reads every body once. Like ScanMessages, fn must not block on I/O.
func (s *Store) ScanBodies(ctx context.Context, mailboxID int64, uids []uint32, fn func(uid uint32, body []byte) error) error {
	for _, c := range chunks(uids) {
		clause, args := uidClause(c)
		err := func() error {
			rows, err := s.rdb.QueryContext(ctx, "SELECT uid, (SELECT data FROM bodies WHERE bodies.id = body_id) FROM messages WHERE mailbox_id = ? AND "+clause+" ORDER BY uid",
				append([]any{mailboxID}, args...)...)
			if err != nil {
				return err
			}
			defer rows.Close()
			var uid uint32
			var data sql.RawBytes
			for rows.Next() {
				if err := rows.Scan(&uid, &data); err != nil {
					return err
				}
				if err := fn(uid, data); err != nil {
					return err
				}
			}
			return rows.Err()
		}()
		if err != nil {
			return fmt.Errorf("scan bodies: %w", err)
		}
	}
	return nil
}

// ScanSnapshot reads a mailbox and calls fn for each of its messages, ascending by
// UID, in one read transaction, so the mailbox's HIGHESTMODSEQ and UIDNEXT match the
// rows. flags is the stored space-separated flag list and is only valid during the
// call: a session builds its view of a large mailbox without a slice of rows or of
// flags per message. fn must not block on I/O, because the scan holds one of the
// store's read connections.
func (s *Store) ScanSnapshot(ctx context.Context, mailboxID int64, fn func(uid uint32, modseq int64, flags []byte) error) (*Mailbox, error) {
	var mb *Mailbox
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		mb, err = scanMailbox(tx.QueryRowContext(ctx, "SELECT "+mailboxCols+" FROM mailboxes WHERE id = ?", mailboxID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT uid, modseq, flags FROM messages WHERE mailbox_id = ? ORDER BY uid", mailboxID)
		if err != nil {
			return err
		}
		defer rows.Close()
		var uid uint32
		var modseq int64
		var flags sql.RawBytes
		for rows.Next() {
			if err := rows.Scan(&uid, &modseq, &flags); err != nil {
				return err
			}
			if err := fn(uid, modseq, flags); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read mailbox: %w", err)
	}
	return mb, nil
}
