package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Separator is the mailbox hierarchy separator (COI clients hard-code "/").
const Separator = "/"

// Mailbox is one folder of an account, with the counters IMAP STATUS reports.
type Mailbox struct {
	ID            int64
	AccountID     int64
	Name          string
	SpecialUse    string
	Subscribed    bool
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq int64
	Messages      int64
	Unseen        int64
	Deleted       int64
	Size          int64
}

var (
	// ErrInboxName: INBOX cannot be deleted, and a name cannot be changed to INBOX.
	ErrInboxName = errors.New("INBOX cannot be deleted or created")
	// ErrBadName: empty components, a leading or trailing separator, or control characters.
	ErrBadName = errors.New("invalid mailbox name")
)

// CanonicalName returns a mailbox name with INBOX (case-insensitive) spelled "INBOX".
func CanonicalName(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX/") {
		return "INBOX" + name[5:]
	}
	return name
}

func validName(name string) error {
	if name == "" || strings.HasPrefix(name, Separator) || strings.HasSuffix(name, Separator) || strings.Contains(name, Separator+Separator) {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return fmt.Errorf("%w: %q contains %q", ErrBadName, name, r)
		}
	}
	if len(name) > 1000 {
		return fmt.Errorf("%w: longer than 1000 bytes", ErrBadName)
	}
	return nil
}

const mailboxCols = "id, account_id, name, special_use, subscribed, uidvalidity, uidnext, highestmodseq, msg_count, msg_unseen, msg_deleted, msg_size"

func scanMailbox(row rowScanner) (*Mailbox, error) {
	var m Mailbox
	err := row.Scan(&m.ID, &m.AccountID, &m.Name, &m.SpecialUse, &m.Subscribed, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &m.Messages, &m.Unseen, &m.Deleted, &m.Size)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// Mailboxes lists an account's mailboxes by name.
func (s *Store) Mailboxes(ctx context.Context, accountID int64) ([]Mailbox, error) {
	return collect(ctx, s, "list mailboxes", "SELECT "+mailboxCols+" FROM mailboxes WHERE account_id = ? ORDER BY name", deref(scanMailbox), accountID)
}

// Mailbox looks a mailbox up by name.
func (s *Store) Mailbox(ctx context.Context, accountID int64, name string) (*Mailbox, error) {
	return readOne(ctx, s, "look up mailbox", scanMailbox, "SELECT "+mailboxCols+" FROM mailboxes WHERE account_id = ? AND name = ?", accountID, CanonicalName(name))
}

// MailboxByID looks a mailbox up by id.
func (s *Store) MailboxByID(ctx context.Context, id int64) (*Mailbox, error) {
	return readOne(ctx, s, "look up mailbox", scanMailbox, "SELECT "+mailboxCols+" FROM mailboxes WHERE id = ?", id)
}

func (t *Tx) mailbox(accountID int64, name string) (*Mailbox, error) {
	m, err := scanMailbox(t.queryRow("SELECT "+mailboxCols+" FROM mailboxes WHERE account_id = ? AND name = ?", accountID, CanonicalName(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return m, err
}

func (t *Tx) mailboxByID(id int64) (*Mailbox, error) {
	m, err := scanMailbox(t.queryRow("SELECT "+mailboxCols+" FROM mailboxes WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return m, err
}

// nextUIDValidity gives each new mailbox of an account a UIDVALIDITY never used before
// by that account, so a deleted and re-created name never reuses one.
func (t *Tx) nextUIDValidity(accountID int64, now time.Time) (uint32, error) {
	var last int64
	if err := t.queryRow("SELECT uidvalidity_last FROM accounts WHERE id = ?", accountID).Scan(&last); err != nil {
		return 0, err
	}
	v := now.Unix() & 0x7fffffff
	if v <= last {
		v = last + 1
	}
	if _, err := t.exec("UPDATE accounts SET uidvalidity_last = ? WHERE id = ?", v, accountID); err != nil {
		return 0, err
	}
	return uint32(v), nil
}

func (t *Tx) createMailbox(accountID int64, name, specialUse string, now time.Time) (*Mailbox, error) {
	name = CanonicalName(name)
	if err := validName(name); err != nil {
		return nil, err
	}
	var n int
	if err := t.queryRow("SELECT count(*) FROM mailboxes WHERE account_id = ? AND name = ?", accountID, name).Scan(&n); err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, ErrExists
	}
	v, err := t.nextUIDValidity(accountID, now)
	if err != nil {
		return nil, err
	}
	res, err := t.exec("INSERT INTO mailboxes (account_id, name, special_use, uidvalidity) VALUES (?, ?, ?, ?)", accountID, name, specialUse, v)
	if err != nil {
		return nil, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	t.touch(accountID)
	return &Mailbox{ID: id, AccountID: accountID, Name: name, SpecialUse: specialUse, Subscribed: true, UIDValidity: v, UIDNext: 1, HighestModSeq: 1}, nil
}

// CreateMailbox creates a mailbox and, as RFC 9051 asks, any missing parents.
func (s *Store) CreateMailbox(ctx context.Context, accountID int64, name, specialUse string) (*Mailbox, error) {
	var m *Mailbox
	err := s.write(ctx, func(t *Tx) error {
		name = CanonicalName(name)
		if name == "INBOX" {
			return ErrExists
		}
		parts := strings.Split(name, Separator)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], Separator)
			if _, err := t.createMailbox(accountID, parent, "", s.now()); err != nil && !errors.Is(err, ErrExists) {
				return err
			}
		}
		var err error
		m, err = t.createMailbox(accountID, name, specialUse, s.now())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create mailbox %q: %w", name, err)
	}
	return m, nil
}

// DeleteMailbox removes a mailbox and its messages. Children stay (RFC 9051).
func (s *Store) DeleteMailbox(ctx context.Context, accountID int64, name string) error {
	name = CanonicalName(name)
	err := s.write(ctx, func(t *Tx) error {
		if name == "INBOX" {
			return ErrInboxName
		}
		m, err := t.mailbox(accountID, name)
		if err != nil {
			return err
		}
		if _, err := t.expungeWhere(m, "1"); err != nil {
			return err
		}
		if _, err := t.exec("DELETE FROM expunged WHERE mailbox_id = ?", m.ID); err != nil {
			return err
		}
		if _, err := t.exec("DELETE FROM metadata WHERE account_id = ? AND mailbox_id = ?", accountID, m.ID); err != nil {
			return err
		}
		if _, err = t.exec("DELETE FROM mailboxes WHERE id = ?", m.ID); err != nil {
			return err
		}
		t.removedMailbox(m.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete mailbox %q: %w", name, err)
	}
	return nil
}

// RenameMailbox renames a mailbox and its children. Renaming INBOX moves its messages
// to the new mailbox and leaves INBOX empty, as RFC 9051 says.
func (s *Store) RenameMailbox(ctx context.Context, accountID int64, from, to string) error {
	from, to = CanonicalName(from), CanonicalName(to)
	err := s.write(ctx, func(t *Tx) error {
		if err := validName(to); err != nil {
			return err
		}
		if to == "INBOX" {
			return ErrInboxName
		}
		src, err := t.mailbox(accountID, from)
		if err != nil {
			return err
		}
		if _, err := t.mailbox(accountID, to); err == nil {
			return ErrExists
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		parts := strings.Split(to, Separator)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], Separator)
			if _, err := t.createMailbox(accountID, parent, "", s.now()); err != nil && !errors.Is(err, ErrExists) {
				return err
			}
		}
		if from == "INBOX" {
			dst, err := t.createMailbox(accountID, to, "", s.now())
			if err != nil {
				return err
			}
			uids, err := t.allUIDs(src.ID)
			if err != nil {
				return err
			}
			if _, _, err := t.copyMessages(src, uids, dst, true); err != nil {
				return err
			}
			return nil
		}
		// SQLite counts characters, not bytes, in substr.
		// A new UIDVALIDITY is not needed: UIDs stay valid under the new name.
		if _, err := t.exec("UPDATE mailboxes SET name = ? WHERE id = ?", to, src.ID); err != nil {
			return err
		}
		prefix := from + Separator
		if _, err := t.exec("UPDATE mailboxes SET name = ? || substr(name, ?) WHERE account_id = ? AND substr(name, 1, ?) = ?",
			to+Separator, utf8.RuneCountInString(prefix)+1, accountID, utf8.RuneCountInString(prefix), prefix); err != nil {
			return err
		}
		t.touch(accountID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("rename mailbox %q to %q: %w", from, to, err)
	}
	return nil
}

// SetSubscribed subscribes or unsubscribes a mailbox.
func (s *Store) SetSubscribed(ctx context.Context, accountID int64, name string, on bool) error {
	name = CanonicalName(name)
	err := s.write(ctx, func(t *Tx) error {
		return t.execOne("UPDATE mailboxes SET subscribed = ? WHERE account_id = ? AND name = ?", on, accountID, name)
	})
	if err != nil {
		return fmt.Errorf("subscribe %q: %w", name, err)
	}
	return nil
}
