package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestIDsNeverReused deletes the newest row of each table whose ids name things
// outside the store and checks that the next row gets a new id (issue 7: a reused
// mailbox id made the IMAP cache answer for another account).
func TestIDsNeverReused(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]

	mb, err := s.CreateMailbox(ctx, a.ID, "Secret", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "Secret"); err != nil {
		t.Fatal(err)
	}
	mb2, err := s.CreateMailbox(ctx, a.ID, "Secret", "")
	if err != nil {
		t.Fatal(err)
	}
	if mb2.ID <= mb.ID {
		t.Errorf("mailbox id after delete: %d, the deleted one had %d", mb2.ID, mb.ID)
	}
	if mb2.UIDValidity == mb.UIDValidity {
		t.Errorf("re-created mailbox kept UIDVALIDITY %d", mb.UIDValidity)
	}

	b, err := s.AddAccount(ctx, "bob@example.org", "secret-password")
	if err != nil {
		t.Fatal(err)
	}
	bobBoxes, err := s.Mailboxes(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	c, err := s.AddAccount(ctx, "carol@example.org", "secret-password")
	if err != nil {
		t.Fatal(err)
	}
	if c.ID <= b.ID {
		t.Errorf("account id after delete: %d, the deleted one had %d", c.ID, b.ID)
	}
	carolBoxes, err := s.Mailboxes(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, cb := range carolBoxes {
		for _, bb := range bobBoxes {
			if cb.ID <= bb.ID {
				t.Errorf("carol's %s has id %d, not above bob's deleted %s (%d)", cb.Name, cb.ID, bb.Name, bb.ID)
			}
		}
	}

	d, err := s.AddDomain(ctx, "gone.example", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDomain(ctx, "gone.example", false); err != nil {
		t.Fatal(err)
	}
	d2, err := s.AddDomain(ctx, "new.example", false)
	if err != nil {
		t.Fatal(err)
	}
	if d2.ID <= d.ID {
		t.Errorf("domain id after delete: %d, the deleted one had %d", d2.ID, d.ID)
	}

	rcptID := func() int64 {
		t.Helper()
		_, _, err := s.Deliver(ctx, &Delivery{Body: []byte("x"), Remote: &Outbound{Sender: "alice@example.org", Recipients: []string{"x@remote.example"}}})
		if err != nil {
			t.Fatal(err)
		}
		due, err := s.QueueEntries(ctx, time.Now().Add(time.Minute), 0)
		if err != nil || len(due) != 1 {
			t.Fatalf("queue: %v %+v", err, due)
		}
		id := due[0].Rcpts[0].ID
		if err := s.DropQueue(ctx, due[0].ID); err != nil {
			t.Fatal(err)
		}
		return id
	}
	if r1, r2 := rcptID(), rcptID(); r2 <= r1 {
		t.Errorf("queue recipient id after drop: %d, the dropped one had %d", r2, r1)
	}
	verifyClean(t, s)
}

// TestOnRemoved checks what the store reports after deleting mailboxes and accounts,
// and that a failed delete reports nothing.
func TestOnRemoved(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org", "bob@example.org")
	got := make(chan Removed, 10)
	s.OnRemoved(func(r Removed) { got <- r })
	next := func() Removed {
		t.Helper()
		select {
		case r := <-got:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no removal reported")
		}
		return Removed{}
	}

	mb, err := s.CreateMailbox(ctx, a[0].ID, "Old", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, a[0].ID, "Old"); err != nil {
		t.Fatal(err)
	}
	if r := next(); len(r.Accounts) != 0 || !slices.Equal(r.Mailboxes, []int64{mb.ID}) {
		t.Errorf("mailbox delete reported %+v, want mailbox %d", r, mb.ID)
	}

	if err := s.DeleteMailbox(ctx, a[0].ID, "Nonexistent"); err == nil {
		t.Fatal("deleting a missing mailbox succeeded")
	}
	boxes, err := s.Mailboxes(ctx, a[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for _, b := range boxes {
		want = append(want, b.ID)
	}
	if err := s.DeleteAccount(ctx, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	r := next() // the failed delete reported nothing, so this is bob's
	slices.Sort(r.Mailboxes)
	slices.Sort(want)
	if !slices.Equal(r.Accounts, []int64{a[1].ID}) || !slices.Equal(r.Mailboxes, want) {
		t.Errorf("account delete reported %+v, want account %d with mailboxes %v", r, a[1].ID, want)
	}
	select {
	case r := <-got:
		t.Errorf("unexpected report %+v", r)
	default:
	}
}

// TestMigrationNeverReuses opens a database made by the first schema, in which the
// newest mailbox, account and queue recipient were deleted (so SQLite would hand
// their ids out again), and checks that migration 2 keeps every row and reference
// and never gives out an id that was used.
func TestMigrationNeverReuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, DBFile)+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		migrations[0],
		"PRAGMA user_version = 1",
		"INSERT INTO domains (id, name, created) VALUES (1, 'example.org', 0)",
		"INSERT INTO accounts (id, address, domain_id, password_hash, created) VALUES (1, 'alice@example.org', 1, 'x', 0), (2, 'gone@example.org', 1, 'x', 0)",
		"INSERT INTO mailboxes (id, account_id, name, uidvalidity) VALUES (1, 1, 'INBOX', 1), (2, 1, 'Kept', 2), (3, 2, 'INBOX', 3), (4, 1, 'Secret', 4)",
		"INSERT INTO bodies (id, refcount, data) VALUES (1, 2, 'hello')",
		"INSERT INTO messages (mailbox_id, uid, modseq, internal_date, size, body_id) VALUES (2, 1, 2, 0, 5, 1)",
		"INSERT INTO queue (id, sender, body_id, created, account_id) VALUES (1, 'alice@example.org', 1, 0, 1), (2, 'gone@example.org', 1, 0, 2)",
		"INSERT INTO queue_rcpts (id, queue_id, rcpt, domain, next_attempt) VALUES (1, 1, 'x@remote.example', 'remote.example', 0), (2, 1, 'y@remote.example', 'remote.example', 0)",
		// The newest rows go, as DELETE and account deletion did before migration 2;
		// an expunged row still names mailbox 4 (a stale one, as old releases left).
		"DELETE FROM queue_rcpts WHERE id = 2",
		"DELETE FROM mailboxes WHERE id = 4",
		"INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (4, 1, 3)",
		"DELETE FROM mailboxes WHERE account_id = 2",
		"DELETE FROM accounts WHERE id = 2",
		"INSERT INTO metadata (account_id, mailbox_id, name, value) VALUES (1, 2, '/private/comment', 'kept')",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var schema string
	if err := s.rdb.QueryRowContext(ctx, "SELECT group_concat(sql, ';') FROM sqlite_master WHERE name IN ('domains', 'accounts', 'mailboxes', 'queue_rcpts')").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(schema, "AUTOINCREMENT"); n != 4 {
		t.Errorf("%d of 4 tables have AUTOINCREMENT:\n%s", n, schema)
	}
	var idx int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('queue_rcpts_due', 'queue_rcpts_queue')").Scan(&idx); err != nil || idx != 2 {
		t.Errorf("queue indexes after migration: %d %v", idx, err)
	}

	a, err := s.Account(ctx, "alice@example.org")
	if err != nil || a.ID != 1 {
		t.Fatalf("alice after migration: %+v %v", a, err)
	}
	kept, err := s.Mailbox(ctx, 1, "Kept")
	if err != nil || kept.ID != 2 {
		t.Fatalf("Kept after migration: %+v %v", kept, err)
	}
	msgs, err := s.Messages(ctx, kept.ID, []uint32{1})
	if err != nil || len(msgs) != 1 || msgs[0].Size != 5 {
		t.Fatalf("message after migration: %+v %v", msgs, err)
	}
	md, err := s.Metadata(ctx, 1, kept.ID, []string{"/private/comment"}, false)
	if err != nil || len(md) != 1 || string(md[0].Value) != "kept" {
		t.Fatalf("metadata after migration: %+v %v", md, err)
	}
	due, err := s.QueueEntries(ctx, time.Now(), 0)
	if err != nil || len(due) != 1 || len(due[0].Rcpts) != 1 || due[0].Rcpts[0].ID != 1 { // queue 2 has no recipients
		t.Fatalf("queue after migration: %+v %v", due, err)
	}

	// New rows: ids above every id still named anywhere, including ids only a stale
	// row names (the expunged row of mailbox 4, gone's queued message). An id that
	// nothing names any more (queue recipient 2) may come back once: nothing in the
	// database refers to it, and nothing in memory survived the restart.
	mb, err := s.CreateMailbox(ctx, 1, "Secret", "")
	if err != nil {
		t.Fatal(err)
	}
	if mb.ID <= 4 {
		t.Errorf("new mailbox got id %d; 1 to 4 were used", mb.ID)
	}
	acc, err := s.AddAccount(ctx, "new@example.org", "secret-password")
	if err != nil {
		t.Fatal(err)
	}
	if acc.ID <= 2 {
		t.Errorf("new account got id %d; 1 and 2 are still named", acc.ID)
	}
	if _, _, err := s.Deliver(ctx, &Delivery{Body: []byte("x"), Remote: &Outbound{Sender: "alice@example.org", Recipients: []string{"z@remote.example"}}}); err != nil {
		t.Fatal(err)
	}
	due, err = s.QueueEntries(ctx, time.Now().Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range due {
		for _, r := range e.Rcpts {
			if r.Rcpt == "z@remote.example" && r.ID <= 1 {
				t.Errorf("new queue recipient got id %d; 1 is in use", r.ID)
			}
		}
	}

	// Foreign keys are back on: deleting the account cascades to its mailboxes.
	if err := s.DeleteAccount(ctx, "new@example.org"); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM mailboxes WHERE account_id = ?", acc.ID).Scan(&left); err != nil || left != 0 {
		t.Errorf("mailboxes left after account delete: %d %v", left, err)
	}
}
