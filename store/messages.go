package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

var (
	// ErrOverQuota: the account's storage or message quota would be exceeded.
	ErrOverQuota = errors.New("over quota")
)

// MsgMeta is what a session keeps of every message in its selected mailbox.
type MsgMeta struct {
	UID    uint32
	ModSeq int64
	Flags  []string
}

// Message is a message row without its body.
type Message struct {
	MsgMeta
	ID           int64
	MailboxID    int64
	InternalDate time.Time
	Size         int64
	BodyID       int64
	Summary      []byte
}

// Target is one local destination of a delivery.
type Target struct {
	AccountID int64
	Mailbox   string // "" means INBOX; created if missing
	Flags     []string
}

// Outbound is the queue entry a delivery adds for remote recipients.
type Outbound struct {
	Sender     string
	Recipients []string
	AccountID  int64 // the submitting account, 0 for forwarded or generated mail
	RequireTLS bool
	SMTPUTF8   bool
	EightBit   bool
}

// Delivery is one message going to local mailboxes and, optionally, the outbound queue,
// committed atomically: either every target and the queue entry exist afterwards, or
// (on error) none do.
type Delivery struct {
	Body         []byte
	InternalDate time.Time // zero: now
	Targets      []Target
	Remote       *Outbound
}

// Delivered reports one target's outcome. Err is per target (ErrOverQuota); the
// delivery as a whole fails only through Deliver's error.
type Delivered struct {
	Target
	MailboxID   int64
	UIDValidity uint32
	UID         uint32
	Err         error
}

// Deliver stores a message for local targets and queues it for remote recipients.
func (s *Store) Deliver(ctx context.Context, d *Delivery) ([]Delivered, int64, error) {
	date := d.InternalDate
	if date.IsZero() {
		date = s.now()
	}
	var summary []byte
	if s.opts.Summarize != nil && len(d.Targets) > 0 {
		summary = s.opts.Summarize(d.Body)
	}
	var out []Delivered
	var queueID int64
	err := s.write(ctx, func(t *Tx) error {
		out = out[:0]
		queueID = 0
		var bodyID int64
		body := func() (int64, error) {
			if bodyID == 0 {
				var err error
				bodyID, err = t.putBody(d.Body)
				if err != nil {
					return 0, err
				}
			}
			return bodyID, nil
		}
		for _, tg := range d.Targets {
			r := Delivered{Target: tg}
			name := tg.Mailbox
			if name == "" {
				name = "INBOX"
			}
			mb, err := t.mailbox(tg.AccountID, name)
			if errors.Is(err, ErrNotFound) {
				mb, err = t.createMailbox(tg.AccountID, name, "", s.now())
			}
			if err != nil {
				return fmt.Errorf("find mailbox %q: %w", name, err)
			}
			if err := t.checkQuota(tg.AccountID, int64(len(d.Body)), s.opts.DefaultQuota); err != nil {
				if !errors.Is(err, ErrOverQuota) {
					return err
				}
				r.Err = err
				out = append(out, r)
				continue
			}
			id, err := body()
			if err != nil {
				return err
			}
			r.MailboxID, r.UIDValidity = mb.ID, mb.UIDValidity
			r.UID, err = t.insertMessage(mb, id, int64(len(d.Body)), NormalizeFlags(tg.Flags), date, summary)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		if d.Remote != nil && len(d.Remote.Recipients) > 0 {
			id, err := body()
			if err != nil {
				return err
			}
			queueID, err = t.enqueue(d.Remote, id, s.now())
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("deliver: %w", err)
	}
	return out, queueID, nil
}

// Append adds a message to a mailbox (IMAP APPEND), subject to quota.
func (s *Store) Append(ctx context.Context, mailboxID int64, body []byte, flags []string, date time.Time) (uidValidity, uid uint32, err error) {
	if date.IsZero() {
		date = s.now()
	}
	var summary []byte
	if s.opts.Summarize != nil {
		summary = s.opts.Summarize(body)
	}
	err = s.write(ctx, func(t *Tx) error {
		mb, err := t.mailboxByID(mailboxID)
		if err != nil {
			return err
		}
		if err := t.checkQuota(mb.AccountID, int64(len(body)), s.opts.DefaultQuota); err != nil {
			return err
		}
		id, err := t.putBody(body)
		if err != nil {
			return err
		}
		uidValidity = mb.UIDValidity
		uid, err = t.insertMessage(mb, id, int64(len(body)), NormalizeFlags(flags), date, summary)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("append: %w", err)
	}
	return uidValidity, uid, nil
}

func (t *Tx) putBody(data []byte) (int64, error) {
	res, err := t.exec("INSERT INTO bodies (refcount, data) VALUES (0, ?)", data)
	if err != nil {
		return 0, fmt.Errorf("store body: %w", err)
	}
	return res.LastInsertId()
}

func (t *Tx) checkQuota(accountID, size, defaultQuota int64) error {
	var quota, quotaMsgs, used, usedMsgs int64
	if err := t.queryRow("SELECT quota_bytes, quota_msgs, used_bytes, used_msgs FROM accounts WHERE id = ?", accountID).Scan(&quota, &quotaMsgs, &used, &usedMsgs); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	}
	if quota < 0 {
		quota = defaultQuota
	}
	if quota > 0 && used+size > quota {
		return ErrOverQuota
	}
	if quotaMsgs > 0 && usedMsgs+1 > quotaMsgs {
		return ErrOverQuota
	}
	return nil
}

// bumpModSeq allocates the next MODSEQ of a mailbox for one change.
func (t *Tx) bumpModSeq(mb *Mailbox) (int64, error) {
	mb.HighestModSeq++
	_, err := t.exec("UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", mb.HighestModSeq, mb.ID)
	return mb.HighestModSeq, err
}

func flagCounts(flags []string) (unseen, deleted int64) {
	if !hasFlag(flags, FlagSeen) {
		unseen = 1
	}
	if hasFlag(flags, FlagDeleted) {
		deleted = 1
	}
	return
}

func (t *Tx) insertMessage(mb *Mailbox, bodyID, size int64, flags []string, date time.Time, summary []byte) (uint32, error) {
	uid := mb.UIDNext
	mb.UIDNext++
	mb.HighestModSeq++
	if _, err := t.exec("INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, body_id, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		mb.ID, uid, mb.HighestModSeq, joinFlags(flags), date.Unix(), size, bodyID, summary); err != nil {
		return 0, fmt.Errorf("insert message: %w", err)
	}
	unseen, deleted := flagCounts(flags)
	if _, err := t.exec("UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, msg_count = msg_count + 1, msg_size = msg_size + ?, msg_unseen = msg_unseen + ?, msg_deleted = msg_deleted + ? WHERE id = ?",
		mb.UIDNext, mb.HighestModSeq, size, unseen, deleted, mb.ID); err != nil {
		return 0, err
	}
	if _, err := t.exec("UPDATE accounts SET used_bytes = used_bytes + ?, used_msgs = used_msgs + 1 WHERE id = ?", size, mb.AccountID); err != nil {
		return 0, err
	}
	if _, err := t.exec("UPDATE bodies SET refcount = refcount + 1 WHERE id = ?", bodyID); err != nil {
		return 0, err
	}
	t.touch(mb.AccountID)
	return uid, nil
}

// uidClause turns a sorted UID list into a compact SQL condition of BETWEEN ranges.
func uidClause(uids []uint32) (string, []any) {
	if len(uids) == 0 {
		return "0", nil
	}
	var b strings.Builder
	var args []any
	b.WriteString("(")
	start, prev := uids[0], uids[0]
	flush := func() {
		if len(args) > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("uid BETWEEN ? AND ?")
		args = append(args, start, prev)
	}
	for _, u := range uids[1:] {
		if u == prev || u == prev+1 {
			prev = u
			continue
		}
		flush()
		start, prev = u, u
	}
	flush()
	b.WriteString(")")
	return b.String(), args
}

// chunks splits a UID list so one statement never carries too many parameters.
func chunks(uids []uint32) [][]uint32 {
	sorted := append([]uint32(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var out [][]uint32
	const max = 400 // ranges, not UIDs: dense sets stay one chunk
	cur := []uint32{}
	ranges := 0
	for i, u := range sorted {
		if i > 0 && u != sorted[i-1]+1 && u != sorted[i-1] {
			ranges++
			if ranges >= max {
				out = append(out, cur)
				cur, ranges = []uint32{}, 0
			}
		}
		cur = append(cur, u)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

type msgRow struct {
	id, bodyID, size, modseq int64
	uid                      uint32
	flags                    []string
	date                     int64
	summary                  []byte
}

func (t *Tx) rows(mailboxID int64, uids []uint32, cond string) ([]msgRow, error) {
	var out []msgRow
	for _, c := range chunks(uids) {
		clause, args := uidClause(c)
		q := "SELECT id, uid, modseq, flags, body_id, size, internal_date, summary FROM messages WHERE mailbox_id = ? AND " + clause
		if cond != "" {
			q += " AND " + cond
		}
		rows, err := t.query(q+" ORDER BY uid", append([]any{mailboxID}, args...)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var r msgRow
			var flags string
			if err := rows.Scan(&r.id, &r.uid, &r.modseq, &flags, &r.bodyID, &r.size, &r.date, &r.summary); err != nil {
				rows.Close()
				return nil, err
			}
			r.flags = splitFlags(flags)
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *Tx) allUIDs(mailboxID int64) ([]uint32, error) {
	rows, err := t.query("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", mailboxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// FlagUpdate is the outcome of StoreFlags.
type FlagUpdate struct {
	Changed  []MsgMeta // messages whose flags changed, with their new MODSEQ
	Modified []uint32  // UIDs refused by UNCHANGEDSINCE (RFC 7162 [MODIFIED])
	// Unchanged lists messages matched whose flags were already as asked, so a
	// session can still report their FETCH FLAGS.
	Unchanged []MsgMeta
}

// StoreFlags changes the flags of messages in a mailbox. unchangedSince > 0 applies
// CONDSTORE's UNCHANGEDSINCE test to each message.
func (s *Store) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op FlagOp, flags []string, unchangedSince int64) (*FlagUpdate, error) {
	flags = NormalizeFlags(flags)
	var up FlagUpdate
	err := s.write(ctx, func(t *Tx) error {
		up = FlagUpdate{}
		mb, err := t.mailboxByID(mailboxID)
		if err != nil {
			return err
		}
		rows, err := t.rows(mailboxID, uids, "")
		if err != nil {
			return err
		}
		var modseq int64
		var dUnseen, dDeleted int64
		for _, r := range rows {
			if unchangedSince > 0 && r.modseq > unchangedSince {
				up.Modified = append(up.Modified, r.uid)
				continue
			}
			nf := applyFlags(r.flags, op, flags)
			if sameFlags(nf, r.flags) {
				up.Unchanged = append(up.Unchanged, MsgMeta{UID: r.uid, ModSeq: r.modseq, Flags: r.flags})
				continue
			}
			if modseq == 0 {
				if modseq, err = t.bumpModSeq(mb); err != nil {
					return err
				}
			}
			if _, err := t.exec("UPDATE messages SET flags = ?, modseq = ? WHERE id = ?", joinFlags(nf), modseq, r.id); err != nil {
				return err
			}
			ou, od := flagCounts(r.flags)
			nu, nd := flagCounts(nf)
			dUnseen += nu - ou
			dDeleted += nd - od
			up.Changed = append(up.Changed, MsgMeta{UID: r.uid, ModSeq: modseq, Flags: nf})
		}
		if dUnseen != 0 || dDeleted != 0 {
			if _, err := t.exec("UPDATE mailboxes SET msg_unseen = msg_unseen + ?, msg_deleted = msg_deleted + ? WHERE id = ?", dUnseen, dDeleted, mailboxID); err != nil {
				return err
			}
		}
		if len(up.Changed) > 0 {
			t.touch(mb.AccountID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store flags: %w", err)
	}
	return &up, nil
}

// expungeWhere removes messages of a mailbox matching an SQL condition and records
// their UIDs for QRESYNC. It returns the removed UIDs in ascending order.
func (t *Tx) expungeWhere(mb *Mailbox, cond string, args ...any) ([]uint32, error) {
	rows, err := t.query("SELECT id, uid, size, body_id, flags FROM messages WHERE mailbox_id = ? AND "+cond+" ORDER BY uid", append([]any{mb.ID}, args...)...)
	if err != nil {
		return nil, err
	}
	type victim struct {
		id, size, body int64
		uid            uint32
		flags          string
	}
	var vs []victim
	for rows.Next() {
		var v victim
		if err := rows.Scan(&v.id, &v.uid, &v.size, &v.body, &v.flags); err != nil {
			rows.Close()
			return nil, err
		}
		vs = append(vs, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, nil
	}
	modseq, err := t.bumpModSeq(mb)
	if err != nil {
		return nil, err
	}
	uids := make([]uint32, 0, len(vs))
	var size, unseen, deleted int64
	for _, v := range vs {
		if _, err := t.exec("DELETE FROM messages WHERE id = ?", v.id); err != nil {
			return nil, err
		}
		if _, err := t.exec("INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)", mb.ID, v.uid, modseq); err != nil {
			return nil, err
		}
		if _, err := t.exec("UPDATE bodies SET refcount = refcount - 1 WHERE id = ?", v.body); err != nil {
			return nil, err
		}
		if _, err := t.exec("DELETE FROM bodies WHERE id = ? AND refcount <= 0", v.body); err != nil {
			return nil, err
		}
		u, d := flagCounts(splitFlags(v.flags))
		size += v.size
		unseen += u
		deleted += d
		uids = append(uids, v.uid)
	}
	if _, err := t.exec("UPDATE mailboxes SET msg_count = msg_count - ?, msg_size = msg_size - ?, msg_unseen = msg_unseen - ?, msg_deleted = msg_deleted - ? WHERE id = ?",
		len(vs), size, unseen, deleted, mb.ID); err != nil {
		return nil, err
	}
	if _, err := t.exec("UPDATE accounts SET used_bytes = used_bytes - ?, used_msgs = used_msgs - ? WHERE id = ?", size, len(vs), mb.AccountID); err != nil {
		return nil, err
	}
	t.touch(mb.AccountID)
	return uids, nil
}

// Expunge removes the \Deleted messages of a mailbox; with uids non-nil, only those
// among them (UID EXPUNGE).
func (s *Store) Expunge(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error) {
	var out []uint32
	err := s.write(ctx, func(t *Tx) error {
		out = nil
		mb, err := t.mailboxByID(mailboxID)
		if err != nil {
			return err
		}
		cond := `(' ' || flags || ' ') LIKE '% \Deleted %'`
		if uids == nil {
			out, err = t.expungeWhere(mb, cond)
			return err
		}
		for _, c := range chunks(uids) {
			clause, args := uidClause(c)
			got, err := t.expungeWhere(mb, cond+" AND "+clause, args...)
			if err != nil {
				return err
			}
			out = append(out, got...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expunge: %w", err)
	}
	return out, nil
}

// copyMessages copies messages (sharing bodies) and, for a move, expunges the sources.
func (t *Tx) copyMessages(src *Mailbox, uids []uint32, dst *Mailbox, move bool) (srcUIDs, dstUIDs []uint32, err error) {
	rows, err := t.rows(src.ID, uids, "")
	if err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return nil, nil, nil
	}
	if src.AccountID != dst.AccountID {
		return nil, nil, fmt.Errorf("copy between accounts is not allowed")
	}
	if !move {
		var size int64
		for _, r := range rows {
			size += r.size
		}
		var quota, used int64
		if err := t.queryRow("SELECT quota_bytes, used_bytes FROM accounts WHERE id = ?", dst.AccountID).Scan(&quota, &used); err != nil {
			return nil, nil, err
		}
		if quota > 0 && used+size > quota {
			return nil, nil, ErrOverQuota
		}
	}
	for _, r := range rows {
		uid, err := t.insertMessage(dst, r.bodyID, r.size, r.flags, time.Unix(r.date, 0), r.summary)
		if err != nil {
			return nil, nil, err
		}
		srcUIDs = append(srcUIDs, r.uid)
		dstUIDs = append(dstUIDs, uid)
	}
	if move {
		for _, c := range chunks(srcUIDs) {
			clause, args := uidClause(c)
			if _, err := t.expungeWhere(src, clause, args...); err != nil {
				return nil, nil, err
			}
		}
	}
	return srcUIDs, dstUIDs, nil
}

// CopyResult is what COPY and MOVE report (RFC 4315 COPYUID).
type CopyResult struct {
	UIDValidity uint32 // of the destination
	Src, Dst    []uint32
}

// Copy copies messages to another mailbox of the same account.
func (s *Store) Copy(ctx context.Context, srcID int64, uids []uint32, dstID int64) (*CopyResult, error) {
	return s.copyOrMove(ctx, srcID, uids, dstID, false)
}

// Move moves messages atomically (RFC 6851): the copies and the expunge commit together.
func (s *Store) Move(ctx context.Context, srcID int64, uids []uint32, dstID int64) (*CopyResult, error) {
	return s.copyOrMove(ctx, srcID, uids, dstID, true)
}

func (s *Store) copyOrMove(ctx context.Context, srcID int64, uids []uint32, dstID int64, move bool) (*CopyResult, error) {
	var res CopyResult
	err := s.write(ctx, func(t *Tx) error {
		src, err := t.mailboxByID(srcID)
		if err != nil {
			return err
		}
		dst := src
		if dstID != srcID {
			if dst, err = t.mailboxByID(dstID); err != nil {
				return err
			}
		}
		res.UIDValidity = dst.UIDValidity
		res.Src, res.Dst, err = t.copyMessages(src, uids, dst, move)
		return err
	})
	if err != nil {
		if move {
			return nil, fmt.Errorf("move: %w", err)
		}
		return nil, fmt.Errorf("copy: %w", err)
	}
	return &res, nil
}

// readTx runs fn in one read transaction, so what it reads is one consistent snapshot.
func (s *Store) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	return fn(tx)
}

// Snapshot returns a mailbox and the UID, MODSEQ and flags of all its messages, read
// together so they agree (what SELECT needs).
func (s *Store) Snapshot(ctx context.Context, mailboxID int64) (*Mailbox, []MsgMeta, error) {
	var mb *Mailbox
	var msgs []MsgMeta
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		mb, err = scanMailbox(tx.QueryRowContext(ctx, "SELECT "+mailboxCols+" FROM mailboxes WHERE id = ?", mailboxID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		msgs, err = scanMeta(tx.QueryContext(ctx, "SELECT uid, modseq, flags FROM messages WHERE mailbox_id = ? ORDER BY uid", mailboxID))
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read mailbox: %w", err)
	}
	return mb, msgs, nil
}

func scanMeta(rows *sql.Rows, err error) ([]MsgMeta, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MsgMeta
	for rows.Next() {
		var m MsgMeta
		var flags string
		if err := rows.Scan(&m.UID, &m.ModSeq, &flags); err != nil {
			return nil, err
		}
		m.Flags = splitFlags(flags)
		out = append(out, m)
	}
	return out, rows.Err()
}

// Changes returns what happened in a mailbox after MODSEQ since: messages added or
// with changed flags, and UIDs expunged, ascending; plus the mailbox as of that read.
func (s *Store) Changes(ctx context.Context, mailboxID int64, since int64) (*Mailbox, []MsgMeta, []uint32, error) {
	var mb *Mailbox
	var changed []MsgMeta
	var gone []uint32
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		mb, err = scanMailbox(tx.QueryRowContext(ctx, "SELECT "+mailboxCols+" FROM mailboxes WHERE id = ?", mailboxID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if mb.HighestModSeq <= since {
			return nil
		}
		changed, err = scanMeta(tx.QueryContext(ctx, "SELECT uid, modseq, flags FROM messages WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", mailboxID, since))
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", mailboxID, since)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u uint32
			if err := rows.Scan(&u); err != nil {
				return err
			}
			gone = append(gone, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read changes: %w", err)
	}
	return mb, changed, gone, nil
}

// Messages returns the rows of the given UIDs (those that exist), ascending by UID.
func (s *Store) Messages(ctx context.Context, mailboxID int64, uids []uint32) ([]Message, error) {
	var out []Message
	for _, c := range chunks(uids) {
		clause, args := uidClause(c)
		rows, err := s.readRows(ctx, "SELECT id, uid, modseq, flags, body_id, size, internal_date, summary FROM messages WHERE mailbox_id = ? AND "+clause+" ORDER BY uid", append([]any{mailboxID}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
		for rows.Next() {
			var m Message
			var flags string
			var date int64
			if err := rows.Scan(&m.ID, &m.UID, &m.ModSeq, &flags, &m.BodyID, &m.Size, &date, &m.Summary); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read messages: %w", err)
			}
			m.MailboxID = mailboxID
			m.Flags = splitFlags(flags)
			m.InternalDate = time.Unix(date, 0)
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
	}
	return out, nil
}

// Body returns a message body.
func (s *Store) Body(ctx context.Context, bodyID int64) ([]byte, error) {
	var data []byte
	err := s.readRow(ctx, "SELECT data FROM bodies WHERE id = ?", bodyID).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return data, nil
}

// ExpungedSince returns UIDs expunged from a mailbox after MODSEQ since (QRESYNC).
func (s *Store) ExpungedSince(ctx context.Context, mailboxID, since int64) ([]uint32, error) {
	rows, err := s.readRows(ctx, "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", mailboxID, since)
	if err != nil {
		return nil, fmt.Errorf("read expunged: %w", err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
