package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Retention (chatmail spec §10) deletes mail by age, size and the account's usage,
// and finds accounts nobody logs in to. Every message it deletes goes through
// expungeWhere, like IMAP EXPUNGE: quota and mailbox counters, MODSEQ, the expunged
// UIDs QRESYNC reports and body reference counts stay right, and the sessions of the
// account are poked after the commit.
//
// The work comes in bounded writes. Victims are chosen on the read pool, where a scan
// of a big account costs the writer nothing; each write then deletes at most one
// batch of them, checking each one's condition again, so a message whose flags
// changed or that was expunged meanwhile is left alone. One write of a batch is a
// small part of a group-committed transaction, and deliveries queued behind it join
// the next one.

// RetentionBatch is how many messages one retention write deletes at most when the
// caller gives no limit, and always for TrimAccount. Measured among 16,000 messages
// of 4 KB: 100 deletions hold the writer 42 ms, because the foreign-key check of each
// deleted body scans messages (messages.body_id has no index), so the cost grows with
// the store; with such an index they take 4 ms.
const RetentionBatch = 100

// victim is a message retention chose on the read pool.
type victim struct {
	mailbox int64
	uid     uint32
	size    int64
}

// victims lists up to limit messages of an account matching cond (over the columns of
// messages, unqualified), oldest first.
func (s *Store) victims(ctx context.Context, accountID int64, cond string, args []any, limit int) ([]victim, error) {
	q := "SELECT mailbox_id, uid, size FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?) AND (" + cond + ") ORDER BY internal_date, id LIMIT ?"
	all := append(append([]any{accountID}, args...), limit)
	rows, err := s.readRows(ctx, q, all...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []victim
	for rows.Next() {
		var v victim
		if err := rows.Scan(&v.mailbox, &v.uid, &v.size); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// usedBytes reads an account's usage inside a write; ok is false for an account that
// no longer exists.
func (t *Tx) usedBytes(accountID int64) (used int64, ok bool, err error) {
	err = t.queryRow("SELECT used_bytes FROM accounts WHERE id = ?", accountID).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return used, err == nil, err
}

// expungeVictims deletes those of vs that still match cond, mailbox by mailbox, and
// returns how many went and the bytes they freed. Mailboxes deleted meanwhile, or
// not the account's, are skipped.
func (t *Tx) expungeVictims(accountID int64, vs []victim, cond string, args []any) (n int, freed int64, err error) {
	before, ok, err := t.usedBytes(accountID)
	if err != nil || !ok {
		return 0, 0, err
	}
	byBox := map[int64][]uint32{}
	for _, v := range vs {
		byBox[v.mailbox] = append(byBox[v.mailbox], v.uid)
	}
	boxes := make([]int64, 0, len(byBox))
	for id := range byBox {
		boxes = append(boxes, id)
	}
	sort.Slice(boxes, func(i, j int) bool { return boxes[i] < boxes[j] })
	for _, id := range boxes {
		mb, err := t.mailboxByID(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		if mb.AccountID != accountID {
			continue
		}
		for _, c := range chunks(byBox[id]) {
			clause, cargs := uidClause(c)
			gone, err := t.expungeWhere(mb, "("+cond+") AND "+clause, append(append([]any{}, args...), cargs...)...)
			if err != nil {
				return 0, 0, err
			}
			n += len(gone)
		}
	}
	after, _, err := t.usedBytes(accountID)
	if err != nil {
		return 0, 0, err
	}
	return n, before - after, nil
}

// expire deletes, in one durable write, up to limit messages of an account that
// match cond, oldest first.
func (s *Store) expire(ctx context.Context, accountID int64, cond string, args []any, limit int) (int, error) {
	if limit <= 0 {
		limit = RetentionBatch
	}
	vs, err := s.victims(ctx, accountID, cond, args, limit)
	if err != nil || len(vs) == 0 {
		return 0, err
	}
	var n int
	err = s.write(ctx, func(t *Tx) error {
		var err error
		n, _, err = t.expungeVictims(accountID, vs, cond, args)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ExpireMessages deletes up to limit messages of an account, from all its mailboxes,
// whose internal date is before olderThan, oldest first, in one durable write, and
// returns how many it deleted (limit ≤ 0: RetentionBatch). Call it again until it
// returns 0. An account that does not exist has nothing to expire.
func (s *Store) ExpireMessages(ctx context.Context, accountID int64, olderThan time.Time, limit int) (int, error) {
	n, err := s.expire(ctx, accountID, "internal_date < ?", []any{olderThan.Unix()}, limit)
	if err != nil {
		return 0, fmt.Errorf("expire messages: %w", err)
	}
	return n, nil
}

// ExpireLargeSeen is ExpireMessages for the messages larger than minSize bytes that
// have the \Seen flag: a client has fetched them (chatmail spec §10).
func (s *Store) ExpireLargeSeen(ctx context.Context, accountID int64, olderThan time.Time, minSize int64, limit int) (int, error) {
	n, err := s.expire(ctx, accountID, `internal_date < ? AND size > ? AND (' ' || flags || ' ') LIKE '% \Seen %'`,
		[]any{olderThan.Unix(), minSize}, limit)
	if err != nil {
		return 0, fmt.Errorf("expire large seen messages: %w", err)
	}
	return n, nil
}

// TrimAccount deletes an account's oldest messages, across all its mailboxes, until
// its usage is at most targetBytes, and returns the bytes freed. It never deletes a
// message whose internal date is after notNewerThan (chatmail spec §10: nothing under
// 24 h old), so the account may stay above the target. It works in writes of at most
// RetentionBatch messages, each of which re-reads the usage and deletes only as many
// of the oldest as the target still needs, so it never frees more than the target
// asks for by more than one message. A missing account frees nothing.
func (s *Store) TrimAccount(ctx context.Context, accountID, targetBytes int64, notNewerThan time.Time) (int64, error) {
	if targetBytes < 0 {
		targetBytes = 0
	}
	const cond = "internal_date <= ?"
	args := []any{notNewerThan.Unix()}
	var freed int64
	for {
		var used int64
		err := s.readRow(ctx, "SELECT used_bytes FROM accounts WHERE id = ?", accountID).Scan(&used)
		if errors.Is(err, sql.ErrNoRows) {
			return freed, nil
		}
		if err != nil {
			return freed, fmt.Errorf("trim account: %w", err)
		}
		if used <= targetBytes {
			return freed, nil
		}
		vs, err := s.victims(ctx, accountID, cond, args, RetentionBatch)
		if err != nil {
			return freed, fmt.Errorf("trim account: %w", err)
		}
		if len(vs) == 0 {
			return freed, nil
		}
		var f int64
		err = s.write(ctx, func(t *Tx) error {
			f = 0
			used, ok, err := t.usedBytes(accountID)
			if err != nil || !ok {
				return err
			}
			// The oldest prefix that brings the usage to the target, as of now.
			k := 0
			for k < len(vs) && used > targetBytes {
				used -= vs[k].size
				k++
			}
			if k == 0 {
				return nil
			}
			_, f, err = t.expungeVictims(accountID, vs[:k], cond, args)
			return err
		})
		if err != nil {
			return freed, fmt.Errorf("trim account: %w", err)
		}
		// Nothing freed means every message chosen went meanwhile, or others brought
		// the usage down; the next read sees which. Each round deletes a message or
		// reads a list without the ones that went, so the loop ends.
		freed += f
	}
}

// InactiveAccounts lists a domain's accounts nobody has logged in to since
// lastLoginBefore, by id. The last login is kept by day (UTC), so an account counts
// as inactive only when the whole of its last login's day lies before
// lastLoginBefore; one that never logged in counts from its creation.
func (s *Store) InactiveAccounts(ctx context.Context, domainID int64, lastLoginBefore time.Time) ([]Account, error) {
	cut := lastLoginBefore.Unix()
	return collect(ctx, s, "list inactive accounts",
		"SELECT "+accountCols+" FROM accounts WHERE domain_id = ? AND created < ? AND (last_login_day = 0 OR (last_login_day + 1) * 86400 <= ?) ORDER BY id",
		deref(scanAccount), domainID, cut, cut)
}

// AccountDomain reads an account and its domain in one query: what a check after
// each delivery needs (the account's usage and its domain's profile).
func (s *Store) AccountDomain(ctx context.Context, accountID int64) (*Account, *Domain, error) {
	var a Account
	var d Domain
	var day, created, dcreated int64
	err := s.readRow(ctx, `SELECT a.id, a.address, a.domain_id, a.quota_bytes, a.quota_msgs, a.used_bytes, a.used_msgs, a.enforce_e2ee_incoming, a.coi_filing, a.last_login_day, a.created,
		d.id, d.name, d.chatmail, d.profile, d.created FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE a.id = ?`, accountID).
		Scan(&a.ID, &a.Address, &a.DomainID, &a.Quota, &a.QuotaMsgs, &a.UsedBytes, &a.UsedMsgs, &a.EnforceE2EEIncoming, &a.COIFiling, &day, &created,
			&d.ID, &d.Name, &d.Chatmail, &d.Profile, &dcreated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("look up account and domain: %w", err)
	}
	if day > 0 {
		a.LastLogin = time.Unix(day*86400, 0).UTC()
	}
	a.Created = time.Unix(created, 0)
	d.Created = time.Unix(dcreated, 0)
	return &a, &d, nil
}
