package store

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// copyFixture puts testdata/name into a new data directory as its database.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DBFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMigrateFixtures opens a database made by each earlier schema version (by the
// coibox of that time: scripts/make-schema-fixture) and checks that the migration
// kept everything: accounts and their passwords, the alias, mailboxes, messages with
// their flags and bodies, the queued message; that the store is consistent; and that
// a copy of the old database was made first.
func TestMigrateFixtures(t *testing.T) {
	for v := 1; v < SchemaVersion(); v++ {
		t.Run(fmt.Sprintf("from v%d", v), func(t *testing.T) {
			dir := copyFixture(t, fmt.Sprintf("schema-v%d.db", v))
			if got := userVersion(t, filepath.Join(dir, DBFile)); got != v {
				t.Fatalf("fixture has schema version %d", got)
			}
			ctx := t.Context()
			s, err := Open(ctx, dir, Options{Now: func() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) }})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			if got := userVersion(t, filepath.Join(dir, DBFile)); got != SchemaVersion() {
				t.Errorf("schema version after open %d, want %d", got, SchemaVersion())
			}
			backup := filepath.Join(dir, fmt.Sprintf("coibox-schema-v%d-20261204T120000.000Z.db", v))
			if got := userVersion(t, backup); got != v {
				t.Errorf("pre-migration copy %s has version %d, want %d", backup, got, v)
			}

			if probs, err := s.Verify(ctx); err != nil || len(probs) != 0 {
				t.Fatalf("verify: %v %v", err, probs)
			}
			for addr, pw := range map[string]string{"alice@example.org": "alice-password-1", "bob@example.org": "bob-password-1"} {
				if _, err := s.Authenticate(ctx, addr, pw); err != nil {
					t.Errorf("log in as %s: %v", addr, err)
				}
			}
			res, err := s.Resolve(ctx, "team@example.org")
			alice, aerr := s.Account(ctx, "alice@example.org")
			if err != nil || aerr != nil || !slices.Equal(res.Accounts, []int64{alice.ID}) {
				t.Fatalf("alias team: %+v %v %v", res, err, aerr)
			}

			subjects := func(box string) ([]string, []Message) {
				mb, err := s.Mailbox(ctx, alice.ID, box)
				if err != nil {
					t.Fatalf("mailbox %s: %v", box, err)
				}
				_, metas, err := s.Snapshot(ctx, mb.ID)
				if err != nil {
					t.Fatal(err)
				}
				var uids []uint32
				for _, m := range metas {
					uids = append(uids, m.UID)
				}
				msgs, err := s.Messages(ctx, mb.ID, uids)
				if err != nil {
					t.Fatal(err)
				}
				var subj []string
				for _, m := range msgs {
					body, err := s.Body(ctx, m.BodyID)
					if err != nil {
						t.Fatal(err)
					}
					_, after, _ := strings.Cut(string(body), "\r\nSubject: ")
					line, _, _ := strings.Cut(after, "\r\n")
					subj = append(subj, line)
				}
				return subj, msgs
			}
			inbox, msgs := subjects("INBOX")
			if !slices.Equal(inbox, []string{"from bob", "from outside", "to team"}) {
				t.Errorf("INBOX subjects %q", inbox)
			}
			if len(msgs) == 3 && (!slices.Contains(msgs[0].Flags, `\Seen`) || slices.Contains(msgs[1].Flags, `\Seen`)) {
				t.Errorf("INBOX flags %v, %v", msgs[0].Flags, msgs[1].Flags)
			}
			archive, amsgs := subjects("Archive")
			if !slices.Equal(archive, []string{"archived"}) || !slices.Contains(amsgs[0].Flags, `\Flagged`) {
				t.Errorf("Archive: %q %v", archive, amsgs)
			}

			q, err := s.QueueEntries(ctx, time.Now().Add(365*24*time.Hour), 10)
			if err != nil || len(q) != 1 || q[0].Sender != "bob@example.org" || len(q[0].Rcpts) != 1 || q[0].Rcpts[0].Rcpt != "nobody@remote.invalid" {
				t.Fatalf("queue: %+v %v", q, err)
			}
			body, err := s.Body(ctx, q[0].BodyID)
			if err != nil || !strings.Contains(string(body), "Subject: to remote") {
				t.Errorf("queued body %q %v", body, err)
			}

			// The migrated store takes new mail.
			if _, _, err := s.Append(ctx, mustMailbox(t, s, alice.ID, "INBOX").ID, []byte("Subject: after\r\n\r\nx\r\n"), nil, time.Now()); err != nil {
				t.Errorf("append after migration: %v", err)
			}
		})
	}
}

func mustMailbox(t *testing.T, s *Store, accountID int64, name string) *Mailbox {
	t.Helper()
	mb, err := s.Mailbox(t.Context(), accountID, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// TestOpenNewerSchema: a database from a newer coibox is refused, its schema and data
// untouched, and no copy made.
func TestOpenNewerSchema(t *testing.T) {
	dir := copyFixture(t, fmt.Sprintf("schema-v%d.db", SchemaVersion()-1))
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion()+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(t.Context(), dir, Options{})
	if !errors.Is(err, ErrSchemaNewer) || !strings.Contains(err.Error(), fmt.Sprintf("its schema version is %d, this coibox knows up to %d", SchemaVersion()+1, SchemaVersion())) {
		t.Fatalf("open: %v", err)
	}
	if v := userVersion(t, filepath.Join(dir, DBFile)); v != SchemaVersion()+1 {
		t.Errorf("schema version now %d", v)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "coibox-schema-*")); len(entries) != 0 {
		t.Errorf("the refused open made a copy: %v", entries)
	}
}
