package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MetaEntry is one METADATA entry (RFC 5464). A nil Value deletes the entry.
type MetaEntry struct {
	Name  string // e.g. "/private/comment", lower-cased
	Value []byte
}

// ErrMetadataTooMany: the account would exceed its entry count limit.
var ErrMetadataTooMany = errors.New("too many metadata entries")

// Server is the account id of server-wide entries (GETMETADATA "" for /shared/…).
const Server int64 = 0

// Metadata returns the entries of an account (or Server) on a mailbox (0 = the
// "" entry) with the given names and, if descendants, every entry below them.
func (s *Store) Metadata(ctx context.Context, accountID, mailboxID int64, names []string, descendants bool) ([]MetaEntry, error) {
	var out []MetaEntry
	for _, name := range names {
		name = strings.ToLower(name)
		q := "SELECT name, value FROM metadata WHERE account_id = ? AND mailbox_id = ? AND (name = ?"
		args := []any{accountID, mailboxID, name}
		if descendants {
			q += " OR substr(name, 1, ?) = ?"
			args = append(args, utf8.RuneCountInString(name)+1, name+"/")
		}
		rows, err := s.readRows(ctx, q+") ORDER BY name", args...)
		if err != nil {
			return nil, fmt.Errorf("read metadata: %w", err)
		}
		for rows.Next() {
			var e MetaEntry
			if err := rows.Scan(&e.Name, &e.Value); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read metadata: %w", err)
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read metadata: %w", err)
		}
	}
	return out, nil
}

// SetMetadata sets or deletes entries all-or-nothing. maxEntries > 0 limits how many
// entries the account may hold in all.
func (s *Store) SetMetadata(ctx context.Context, accountID, mailboxID int64, entries []MetaEntry, maxEntries int) error {
	err := s.write(ctx, func(t *Tx) error {
		for _, e := range entries {
			name := strings.ToLower(e.Name)
			if e.Value == nil {
				if _, err := t.exec("DELETE FROM metadata WHERE account_id = ? AND mailbox_id = ? AND name = ?", accountID, mailboxID, name); err != nil {
					return err
				}
				continue
			}
			if _, err := t.exec("INSERT INTO metadata (account_id, mailbox_id, name, value) VALUES (?, ?, ?, ?) ON CONFLICT (account_id, mailbox_id, name) DO UPDATE SET value = excluded.value",
				accountID, mailboxID, name, e.Value); err != nil {
				return err
			}
		}
		if maxEntries > 0 {
			var n int
			if err := t.queryRow("SELECT count(*) FROM metadata WHERE account_id = ?", accountID).Scan(&n); err != nil {
				return err
			}
			if n > maxEntries {
				return ErrMetadataTooMany
			}
		}
		if accountID != Server {
			t.touch(accountID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set metadata: %w", err)
	}
	return nil
}

// DeleteMetadataIf deletes entry name of an account on a mailbox only if it still
// holds value, in one statement, so that a value a client stored in between (a new
// subscription under the same name, say) is never deleted in its place. It reports
// whether it deleted the entry.
func (s *Store) DeleteMetadataIf(ctx context.Context, accountID, mailboxID int64, name string, value []byte) (bool, error) {
	var deleted bool
	err := s.write(ctx, func(t *Tx) error {
		res, err := t.exec("DELETE FROM metadata WHERE account_id = ? AND mailbox_id = ? AND name = ? AND value = ?",
			accountID, mailboxID, strings.ToLower(name), value)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		deleted = n > 0
		if deleted && accountID != Server {
			t.touch(accountID)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("delete metadata: %w", err)
	}
	return deleted, nil
}
