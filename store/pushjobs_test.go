package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// pushJobs lists every job, due or not.
func pushJobs(t *testing.T, s *Store) []PushJob {
	t.Helper()
	jobs, err := s.DuePushJobs(context.Background(), time.Unix(1<<40, 0), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func addToken(t *testing.T, s *Store, accountID int64, token string, now time.Time) {
	t.Helper()
	if err := s.AddPushToken(context.Background(), accountID, token, now, 20); err != nil {
		t.Fatal(err)
	}
}

func enqueue(t *testing.T, s *Store, accountID int64, token string, now time.Time) bool {
	t.Helper()
	made, err := s.EnqueuePush(context.Background(), accountID, token, now)
	if err != nil {
		t.Fatal(err)
	}
	return made
}

// TestPushJobPendingDedup: a token with a pending job gets no second one, whether the
// job awaits its first attempt or a retry; a token the account lacks gets none.
func TestPushJobPendingDedup(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]
	t0 := time.Unix(1_700_000_000, 0)
	addToken(t, s, a.ID, "tok-a", t0)
	addToken(t, s, a.ID, "tok-b", t0)

	if !enqueue(t, s, a.ID, "tok-a", t0) || !enqueue(t, s, a.ID, "tok-b", t0) {
		t.Fatal("first jobs not made")
	}
	if enqueue(t, s, a.ID, "tok-a", t0.Add(time.Second)) {
		t.Error("second job made for a pending first attempt")
	}
	if enqueue(t, s, a.ID, "unknown", t0) {
		t.Error("job made for a token the account does not have")
	}
	jobs := pushJobs(t, s)
	if len(jobs) != 2 {
		t.Fatalf("jobs: %+v", jobs)
	}
	ja := jobs[0]
	if ja.Token != "tok-a" || ja.Triggers != 2 || !ja.Triggered.Equal(t0.Add(time.Second)) || !ja.NextAttempt.Equal(t0) {
		t.Errorf("folded job: %+v", ja)
	}

	if err := s.PushJobRetry(ctx, ja.ID, t0, t0.Add(8*time.Second)); err != nil {
		t.Fatal(err)
	}
	if enqueue(t, s, a.ID, "tok-a", t0.Add(2*time.Second)) {
		t.Error("second job made for a job awaiting its retry")
	}
	if n := len(pushJobs(t, s)); n != 2 {
		t.Errorf("%d jobs, want 2", n)
	}
}

// TestPushJobLifecycle walks one job through retries to done, and checks what is
// due when and that the retry record is exact.
func TestPushJobLifecycle(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]
	t0 := time.Unix(1_700_000_000, 0)
	addToken(t, s, a.ID, "tok", t0)
	enqueue(t, s, a.ID, "tok", t0)

	due, err := s.DuePushJobs(ctx, t0, 10)
	if err != nil || len(due) != 1 || due[0].Attempts != 0 || !due[0].FirstAttempt.IsZero() {
		t.Fatalf("due at t0: %+v %v", due, err)
	}
	j := due[0]
	// A retry time with a fraction of a second is rounded up, never down.
	if err := s.PushJobRetry(ctx, j.ID, t0, t0.Add(8*time.Second+300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DuePushJobs(ctx, t0.Add(8*time.Second), 10); len(due) != 0 {
		t.Errorf("due before its retry time: %+v", due)
	}
	if next, err := s.NextPushAttempt(ctx, t0); err != nil || !next.Equal(t0.Add(9*time.Second)) {
		t.Errorf("next attempt %v %v, want t0+9s", next, err)
	}
	due, _ = s.DuePushJobs(ctx, t0.Add(9*time.Second), 10)
	if len(due) != 1 || due[0].Attempts != 1 || !due[0].FirstAttempt.Equal(t0) {
		t.Fatalf("due at t0+9s: %+v", due)
	}
	// The first attempt's time stays that of the first.
	if err := s.PushJobRetry(ctx, j.ID, t0.Add(9*time.Second), t0.Add(73*time.Second)); err != nil {
		t.Fatal(err)
	}
	due, _ = s.DuePushJobs(ctx, t0.Add(73*time.Second), 10)
	if len(due) != 1 || due[0].Attempts != 2 || !due[0].FirstAttempt.Equal(t0) {
		t.Fatalf("due at t0+73s: %+v", due)
	}
	if err := s.PushJobDone(ctx, j.ID, due[0].Triggers); err != nil {
		t.Fatal(err)
	}
	if jobs := pushJobs(t, s); len(jobs) != 0 {
		t.Errorf("done job still there: %+v", jobs)
	}
	if next, err := s.NextPushAttempt(ctx, t0); err != nil || !next.IsZero() {
		t.Errorf("next attempt with no jobs: %v %v", next, err)
	}
	// Finishing a job that is gone is no error: its token may have been deleted.
	if err := s.PushJobDone(ctx, j.ID, 1); err != nil {
		t.Error(err)
	}
	if err := s.PushJobRetry(ctx, j.ID, t0, t0); err != nil {
		t.Error(err)
	}
	if jobs := pushJobs(t, s); len(jobs) != 0 {
		t.Errorf("finishing a gone job made one: %+v", jobs)
	}
}

// TestPushJobFoldedDuringAttempt: a delivery folded into a job after the notifier
// listed it may have missed the POST, so success (or giving up) arms the job again
// instead of deleting it, and the re-armed job is a fresh one.
func TestPushJobFoldedDuringAttempt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		finish func(s *Store, id, triggers int64) error
	}{
		{"done", func(s *Store, id, triggers int64) error { return s.PushJobDone(context.Background(), id, triggers) }},
		{"drop", func(s *Store, id, triggers int64) error { return s.PushJobDrop(context.Background(), id, triggers) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t)
			ctx := context.Background()
			a := setup(t, s, "alice@example.org")[0]
			t0 := time.Unix(1_700_000_000, 0)
			addToken(t, s, a.ID, "tok", t0)
			enqueue(t, s, a.ID, "tok", t0)
			if err := s.PushJobRetry(ctx, pushJobs(t, s)[0].ID, t0, t0.Add(8*time.Second)); err != nil {
				t.Fatal(err)
			}
			listed, _ := s.DuePushJobs(ctx, t0.Add(8*time.Second), 10)
			if len(listed) != 1 {
				t.Fatalf("listed %+v", listed)
			}
			// Under way: another delivery arrives.
			enqueue(t, s, a.ID, "tok", t0.Add(10*time.Second))
			if err := tc.finish(s, listed[0].ID, listed[0].Triggers); err != nil {
				t.Fatal(err)
			}
			jobs := pushJobs(t, s)
			if len(jobs) != 1 {
				t.Fatalf("jobs after finishing: %+v", jobs)
			}
			j := jobs[0]
			if j.ID != listed[0].ID || j.Attempts != 0 || !j.FirstAttempt.IsZero() || !j.NextAttempt.Equal(t0.Add(10*time.Second)) {
				t.Errorf("re-armed job: %+v", j)
			}
			// Listed again, finished with nothing folded in: gone.
			if err := tc.finish(s, j.ID, j.Triggers); err != nil {
				t.Fatal(err)
			}
			if jobs := pushJobs(t, s); len(jobs) != 0 {
				t.Errorf("jobs after the second finish: %+v", jobs)
			}
		})
	}
}

// TestDuePushJobsLimitPerKind: a backlog of first attempts does not hide due retries,
// nor the other way round.
func TestDuePushJobsLimitPerKind(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]
	t0 := time.Unix(1_700_000_000, 0)
	var ids []int64
	for _, tok := range []string{"r1", "r2", "f1", "f2", "f3", "f4", "f5"} {
		addToken(t, s, a.ID, tok, t0)
		enqueue(t, s, a.ID, tok, t0)
	}
	for _, j := range pushJobs(t, s) {
		ids = append(ids, j.ID)
	}
	for _, id := range ids[:2] {
		if err := s.PushJobRetry(ctx, id, t0, t0); err != nil {
			t.Fatal(err)
		}
	}
	due, err := s.DuePushJobs(ctx, t0, 2)
	if err != nil {
		t.Fatal(err)
	}
	var first, retry int
	for _, j := range due {
		if j.Attempts == 0 {
			first++
		} else {
			retry++
		}
	}
	if first != 2 || retry != 2 {
		t.Errorf("limit 2: %d first attempts and %d retries, want 2 and 2: %+v", first, retry, due)
	}
}

// TestPushJobsFollowTheirToken: deleting a token, evicting it and deleting the
// account each delete its job in the same write; ids are never handed out again.
func TestPushJobsFollowTheirToken(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	accs := setup(t, s, "alice@example.org", "bob@example.org")
	a, b := accs[0], accs[1]
	t0 := time.Unix(1_700_000_000, 0)

	addToken(t, s, a.ID, "gone", t0)
	enqueue(t, s, a.ID, "gone", t0)
	old := pushJobs(t, s)[0].ID
	if err := s.DeletePushToken(ctx, a.ID, "gone"); err != nil {
		t.Fatal(err)
	}
	if jobs := pushJobs(t, s); len(jobs) != 0 {
		t.Fatalf("job outlived its token: %+v", jobs)
	}
	// The same token again: a new job with a new id, though the newest row was deleted.
	addToken(t, s, a.ID, "gone", t0)
	enqueue(t, s, a.ID, "gone", t0)
	if jobs := pushJobs(t, s); len(jobs) != 1 || jobs[0].ID <= old {
		t.Fatalf("job after re-adding the token: %+v (old id %d)", jobs, old)
	}

	// Eviction (max 1): the older token goes, and its job with it.
	if err := s.AddPushToken(ctx, a.ID, "newer", t0.Add(time.Hour), 1); err != nil {
		t.Fatal(err)
	}
	if jobs := pushJobs(t, s); len(jobs) != 0 {
		t.Fatalf("job outlived its evicted token: %+v", jobs)
	}

	addToken(t, s, b.ID, "bobs", t0)
	enqueue(t, s, b.ID, "bobs", t0)
	if err := s.DeleteAccount(ctx, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	if jobs := pushJobs(t, s); len(jobs) != 0 {
		t.Fatalf("job outlived its account: %+v", jobs)
	}
	verifyClean(t, s)
}

// TestPushJobsSurviveRestart: jobs, with their attempt counts, are on disk.
func TestPushJobsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := setup(t, s, "alice@example.org")[0]
	t0 := time.Unix(1_700_000_000, 0)
	addToken(t, s, a.ID, "tok", t0)
	enqueue(t, s, a.ID, "tok", t0)
	before := pushJobs(t, s)[0]
	if err := s.PushJobRetry(ctx, before.ID, t0, t0.Add(8*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	jobs := pushJobs(t, s)
	if len(jobs) != 1 {
		t.Fatalf("jobs after reopening: %+v", jobs)
	}
	j := jobs[0]
	if j.ID != before.ID || j.Token != "tok" || j.Attempts != 1 || !j.FirstAttempt.Equal(t0) || !j.NextAttempt.Equal(t0.Add(8*time.Second)) {
		t.Errorf("job after reopening: %+v", j)
	}
}

// TestMigrationPushJobs upgrades a database at schema 3 that holds a token.
func TestMigrationPushJobs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, DBFile)+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := applyMigration(ctx, conn, i+1, migrations[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"INSERT INTO domains (id, name, created) VALUES (1, 'example.org', 0)",
		"INSERT INTO accounts (id, address, domain_id, password_hash, created) VALUES (1, 'alice@example.org', 1, 'x', 0)",
		"INSERT INTO push_tokens (account_id, token, last_set) VALUES (1, 'tok', 1700000000)",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close()
	db.Close()

	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !enqueue(t, s, 1, "tok", time.Unix(1_700_000_000, 0)) {
		t.Fatal("no job for the migrated token")
	}
	verifyClean(t, s)
}
