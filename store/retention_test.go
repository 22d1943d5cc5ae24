package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var retentionEpoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func openClock(t *testing.T) (*Store, *testClock) {
	t.Helper()
	clk := &testClock{now: retentionEpoch}
	s, err := Open(context.Background(), t.TempDir(), Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

// stored names one delivered message.
type stored struct {
	mailbox int64
	uid     uint32
	name    string // the test's name for it, also its Subject
}

// deliverAt delivers a message of exactly size bytes dated date into box.
func deliverAt(t *testing.T, s *Store, accountID int64, box, name string, size int, date time.Time, flags ...string) stored {
	t.Helper()
	body := []byte("Subject: " + name + "\r\n\r\n")
	if len(body) > size {
		t.Fatalf("message %s: size %d is below its header", name, size)
	}
	body = append(body, strings.Repeat("x", size-len(body))...)
	r, _, err := s.Deliver(context.Background(), &Delivery{Body: body, InternalDate: date, Targets: []Target{{AccountID: accountID, Mailbox: box, Flags: flags}}})
	if err != nil || r[0].Err != nil {
		t.Fatalf("deliver %s: %v %+v", name, err, r)
	}
	return stored{mailbox: r[0].MailboxID, uid: r[0].UID, name: name}
}

// survivors returns the Subjects of every message of an account, sorted.
func survivors(t *testing.T, s *Store, accountID int64) []string {
	t.Helper()
	ctx := context.Background()
	boxes, err := s.Mailboxes(ctx, accountID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range boxes {
		_, metas, err := s.Snapshot(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		var uids []uint32
		for _, m := range metas {
			uids = append(uids, m.UID)
		}
		msgs, err := s.Messages(ctx, b.ID, uids)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			body, err := s.Body(ctx, m.BodyID)
			if err != nil {
				t.Fatal(err)
			}
			line, _, _ := strings.Cut(string(body), "\r\n")
			out = append(out, strings.TrimPrefix(line, "Subject: "))
		}
	}
	slices.Sort(out)
	return out
}

func highestModSeqs(t *testing.T, s *Store, accountID int64) map[int64]int64 {
	t.Helper()
	boxes, err := s.Mailboxes(context.Background(), accountID)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int64]int64{}
	for _, b := range boxes {
		m[b.ID] = b.HighestModSeq
	}
	return m
}

// checkExpunged asserts that exactly the messages gone were expunged after the
// MODSEQs of before (QRESYNC's VANISHED (EARLIER)).
func checkExpunged(t *testing.T, s *Store, before map[int64]int64, gone []stored) {
	t.Helper()
	want := map[int64][]uint32{}
	for _, g := range gone {
		want[g.mailbox] = append(want[g.mailbox], g.uid)
	}
	for box, since := range before {
		got, err := s.ExpungedSince(context.Background(), box, since)
		if err != nil {
			t.Fatal(err)
		}
		w := want[box]
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("mailbox %d: expunged since %d: %v, want %v", box, since, got, w)
		}
		mb, err := s.MailboxByID(context.Background(), box)
		if err != nil {
			t.Fatal(err)
		}
		if len(w) > 0 && mb.HighestModSeq <= since {
			t.Errorf("mailbox %d: HIGHESTMODSEQ %d did not move past %d", box, mb.HighestModSeq, since)
		}
	}
}

func usage(t *testing.T, s *Store, accountID int64) (int64, int64) {
	t.Helper()
	a, err := s.AccountByID(context.Background(), accountID)
	if err != nil {
		t.Fatal(err)
	}
	return a.UsedBytes, a.UsedMsgs
}

func TestExpireMessages(t *testing.T) {
	s, clk := openClock(t)
	ctx := context.Background()
	acc := setup(t, s, "alice@example.org", "bob@example.org")
	a, b := acc[0].ID, acc[1].ID
	now := retentionEpoch.Add(30 * 24 * time.Hour)
	clk.Set(now)
	cut := now.Add(-20 * 24 * time.Hour)

	old1 := deliverAt(t, s, a, "INBOX", "old1", 300, cut.Add(-10*24*time.Hour))
	old2 := deliverAt(t, s, a, "Sent", "old2", 400, cut.Add(-time.Hour), `\Seen`)
	old3 := deliverAt(t, s, a, "INBOX", "old3", 500, cut.Add(-time.Second), `\Deleted`)
	deliverAt(t, s, a, "INBOX", "edge", 300, cut) // exactly at the cut: not before it
	deliverAt(t, s, a, "Archive", "new", 300, now)
	deliverAt(t, s, b, "INBOX", "bobold", 300, cut.Add(-24*time.Hour)) // another account

	before := highestModSeqs(t, s, a)
	sub := s.Subscribe(a)
	defer sub.Close()

	// Batches: two, then the last one, then nothing.
	var ns []int
	for {
		n, err := s.ExpireMessages(ctx, a, cut, 2)
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, n)
		if n == 0 {
			break
		}
	}
	if fmt.Sprint(ns) != "[2 1 0]" {
		t.Errorf("batches deleted %v, want [2 1 0]", ns)
	}
	select {
	case <-sub.C:
	case <-time.After(5 * time.Second):
		t.Error("no change-feed poke after expiry")
	}
	if got := survivors(t, s, a); fmt.Sprint(got) != "[edge new]" {
		t.Errorf("alice keeps %v, want [edge new]", got)
	}
	if got := survivors(t, s, b); fmt.Sprint(got) != "[bobold]" {
		t.Errorf("bob keeps %v: another account was touched", got)
	}
	if bytes, msgs := usage(t, s, a); bytes != 600 || msgs != 2 {
		t.Errorf("alice uses %d bytes in %d messages, want 600 in 2", bytes, msgs)
	}
	checkExpunged(t, s, before, []stored{old1, old2, old3})
	inbox, _ := s.Mailbox(ctx, a, "INBOX")
	if inbox.Messages != 1 || inbox.Deleted != 0 || inbox.Unseen != 1 || inbox.Size != 300 {
		t.Errorf("INBOX counters %+v", inbox)
	}
	verifyClean(t, s)

	// A missing account has nothing to expire.
	if n, err := s.ExpireMessages(ctx, 9999, now, 0); n != 0 || err != nil {
		t.Errorf("missing account: %d, %v", n, err)
	}
}

func TestExpireLargeSeen(t *testing.T) {
	s, clk := openClock(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0].ID
	now := retentionEpoch.Add(30 * 24 * time.Hour)
	clk.Set(now)
	cut := now.Add(-7 * 24 * time.Hour)
	const big = 2000
	old := cut.Add(-time.Hour)

	gone1 := deliverAt(t, s, a, "INBOX", "bigseen", big+1, old, `\Seen`)
	gone2 := deliverAt(t, s, a, "Sent", "bigseenflagged", big+500, old, `\Seen`, `\Flagged`, "$Chat")
	deliverAt(t, s, a, "INBOX", "bigunseen", big+1, old)
	deliverAt(t, s, a, "INBOX", "exactlymin", big, old, `\Seen`) // not larger than minSize
	deliverAt(t, s, a, "INBOX", "smallseen", 100, old, `\Seen`)
	deliverAt(t, s, a, "INBOX", "bignewseen", big+1, cut, `\Seen`)
	deliverAt(t, s, a, "INBOX", "keyword", big+1, old, "$Seenish")

	before := highestModSeqs(t, s, a)
	n, err := s.ExpireLargeSeen(ctx, a, cut, big, 0)
	if err != nil || n != 2 {
		t.Fatalf("expire large seen: %d, %v; want 2", n, err)
	}
	if n, err := s.ExpireLargeSeen(ctx, a, cut, big, 0); err != nil || n != 0 {
		t.Fatalf("second run: %d, %v; want 0", n, err)
	}
	want := "[bignewseen bigunseen exactlymin keyword smallseen]"
	if got := survivors(t, s, a); fmt.Sprint(got) != want {
		t.Errorf("survivors %v, want %s", got, want)
	}
	checkExpunged(t, s, before, []stored{gone1, gone2})
	verifyClean(t, s)
}

func TestTrimAccount(t *testing.T) {
	s, clk := openClock(t)
	ctx := context.Background()
	acc := setup(t, s, "alice@example.org", "bob@example.org")
	a := acc[0].ID
	now := retentionEpoch.Add(10 * 24 * time.Hour)
	clk.Set(now)
	day := 24 * time.Hour
	protect := now.Add(-day)

	// Oldest first across folders: m1 (INBOX), m2 (Sent), m3 (Archive), ...
	m1 := deliverAt(t, s, a, "INBOX", "m1", 1000, now.Add(-9*day))
	m2 := deliverAt(t, s, a, "Sent", "m2", 1000, now.Add(-8*day))
	m3 := deliverAt(t, s, a, "Archive", "m3", 1000, now.Add(-7*day), `\Seen`)
	deliverAt(t, s, a, "INBOX", "m4", 1000, now.Add(-6*day))
	deliverAt(t, s, a, "Sent", "edge", 1000, protect) // exactly 24 h old: may go
	deliverAt(t, s, a, "INBOX", "fresh1", 1000, now.Add(-time.Hour))
	deliverAt(t, s, a, "INBOX", "fresh2", 1000, now)
	// The oldest: one delivery to alice and bob, whose copies share one body.
	r, _, err := s.Deliver(ctx, &Delivery{Body: []byte("Subject: shared\r\n\r\n" + strings.Repeat("y", 981)), InternalDate: now.Add(-20 * day),
		Targets: []Target{{AccountID: a}, {AccountID: acc[1].ID}}})
	if err != nil || r[0].Err != nil || r[1].Err != nil {
		t.Fatal(err, r)
	}
	shared := stored{mailbox: r[0].MailboxID, uid: r[0].UID, name: "shared"}
	if used, _ := usage(t, s, a); used != 8000 {
		t.Fatalf("setup: alice uses %d, want 8000", used)
	}

	// Down to 4500: shared, m1, m2, m3 go (8000 → 4000); one fewer would leave 5000.
	before := highestModSeqs(t, s, a)
	freed, err := s.TrimAccount(ctx, a, 4500, protect)
	if err != nil || freed != 4000 {
		t.Fatalf("trim to 4500: freed %d, %v; want 4000", freed, err)
	}
	if got := survivors(t, s, a); fmt.Sprint(got) != "[edge fresh1 fresh2 m4]" {
		t.Errorf("after trim to 4500: %v", got)
	}
	checkExpunged(t, s, before, []stored{shared, m1, m2, m3})
	if got := survivors(t, s, acc[1].ID); fmt.Sprint(got) != "[shared]" {
		t.Errorf("bob's copy of the shared body: %v", got)
	}
	verifyClean(t, s) // includes the shared body's refcount

	// Under the target already: nothing.
	if freed, err := s.TrimAccount(ctx, a, 4000, protect); err != nil || freed != 0 {
		t.Errorf("trim at target: freed %d, %v", freed, err)
	}

	// Far over quota: everything up to 24 h old goes, nothing newer, even though the
	// target is not reached.
	freed, err = s.TrimAccount(ctx, a, 0, protect)
	if err != nil || freed != 2000 {
		t.Fatalf("trim to 0: freed %d, %v; want 2000", freed, err)
	}
	if got := survivors(t, s, a); fmt.Sprint(got) != "[fresh1 fresh2]" {
		t.Errorf("after trim to 0: %v, want only the messages under 24 h old", got)
	}
	if used, msgs := usage(t, s, a); used != 2000 || msgs != 2 {
		t.Errorf("usage %d/%d, want 2000/2", used, msgs)
	}
	verifyClean(t, s)
}

// TestTrimAccountBatches trims more messages than one write takes.
func TestTrimAccountBatches(t *testing.T) {
	s, clk := openClock(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0].ID
	now := retentionEpoch.Add(10 * 24 * time.Hour)
	clk.Set(now)
	total := RetentionBatch + RetentionBatch/2 + 7
	var wg sync.WaitGroup
	errs := make(chan error, total)
	for i := 0; i < total; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := []byte(fmt.Sprintf("Subject: %04d\r\n\r\n%s", i, strings.Repeat("z", 100)))
			r, _, err := s.Deliver(ctx, &Delivery{Body: body, InternalDate: now.Add(-48*time.Hour + time.Duration(i)*time.Second), Targets: []Target{{AccountID: a}}})
			if err == nil && r[0].Err != nil {
				err = r[0].Err
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	used, _ := usage(t, s, a)
	per := used / int64(total)
	keep := 10
	freed, err := s.TrimAccount(ctx, a, per*int64(keep), now.Add(-24*time.Hour))
	if err != nil || freed != per*int64(total-keep) {
		t.Fatalf("freed %d, %v; want %d", freed, err, per*int64(total-keep))
	}
	got := survivors(t, s, a)
	var want []string
	for i := total - keep; i < total; i++ {
		want = append(want, fmt.Sprintf("%04d", i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("survivors %v, want the %d newest %v", got, keep, want)
	}
	verifyClean(t, s)
}

// TestExpireRechecks gives the write a victim list that went stale: a message whose
// \Seen flag was removed after it was chosen, and one a client expunged, are left as
// they are.
func TestExpireRechecks(t *testing.T) {
	s, clk := openClock(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0].ID
	now := retentionEpoch.Add(30 * 24 * time.Hour)
	clk.Set(now)
	old := now.Add(-10 * 24 * time.Hour)
	m1 := deliverAt(t, s, a, "INBOX", "unseenlater", 3000, old, `\Seen`)
	m2 := deliverAt(t, s, a, "INBOX", "expungedlater", 3000, old, `\Seen`, `\Deleted`)
	deliverAt(t, s, a, "INBOX", "stillseen", 3000, old, `\Seen`)
	cond := `internal_date < ? AND size > ? AND (' ' || flags || ' ') LIKE '% \Seen %'`
	args := []any{now.Unix(), int64(2000)}
	vs, err := s.victims(ctx, a, cond, args, 10)
	if err != nil || len(vs) != 3 {
		t.Fatalf("victims: %v %+v", err, vs)
	}
	if _, err := s.StoreFlags(ctx, m1.mailbox, []uint32{m1.uid}, FlagsRemove, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, m2.mailbox, nil); err != nil {
		t.Fatal(err)
	}
	var n int
	var freed int64
	if err := s.Write(ctx, func(t *Tx) error {
		var err error
		n, freed, err = t.expungeVictims(a, vs, cond, args)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 1 || freed != 3000 {
		t.Errorf("deleted %d freeing %d, want 1 freeing 3000", n, freed)
	}
	if got := survivors(t, s, a); fmt.Sprint(got) != "[unseenlater]" {
		t.Errorf("survivors %v", got)
	}
	verifyClean(t, s)
}

func TestInactiveAccounts(t *testing.T) {
	s, clk := openClock(t)
	ctx := context.Background()
	d1, err := s.AddDomain(ctx, "chat.example", true)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := s.AddDomain(ctx, "other.example", true)
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	add := func(address string, created time.Time, lastLogin time.Time) *Account {
		t.Helper()
		clk.Set(created)
		a, err := s.AddAccount(ctx, address, "secret-password")
		if err != nil {
			t.Fatal(err)
		}
		if !lastLogin.IsZero() {
			if err := s.Write(ctx, func(t *Tx) error {
				_, err := t.exec("UPDATE accounts SET last_login_day = ? WHERE id = ?", lastLogin.Unix()/86400, a.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		return a
	}
	t0 := retentionEpoch // 12:00 UTC
	add("neverold@chat.example", t0, time.Time{})
	add("nevernew@chat.example", t0.Add(95*day), time.Time{})
	add("idle@chat.example", t0, t0.Add(2*day))
	add("active@chat.example", t0, t0.Add(50*day))
	// Last login on the day the cut falls in: its day does not lie wholly before the
	// cut, so it is not (yet) inactive.
	add("sameday@chat.example", t0, t0.Add(10*day))
	add("elsewhere@other.example", t0, time.Time{})

	cut := t0.Add(10*day + time.Hour) // 13:00 on the day of sameday's login
	got, err := s.InactiveAccounts(ctx, d1.ID, cut)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range got {
		names = append(names, a.Address)
	}
	if fmt.Sprint(names) != "[neverold@chat.example idle@chat.example]" {
		t.Errorf("inactive before %v: %v", cut, names)
	}
	// A day later sameday's login day is wholly before the cut.
	got, err = s.InactiveAccounts(ctx, d1.ID, t0.Add(11*day))
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, a := range got {
		names = append(names, a.Address)
	}
	if fmt.Sprint(names) != "[neverold@chat.example idle@chat.example sameday@chat.example]" {
		t.Errorf("inactive a day later: %v", names)
	}
	if got, err := s.InactiveAccounts(ctx, d2.ID, cut); err != nil || len(got) != 1 || got[0].Address != "elsewhere@other.example" {
		t.Errorf("other domain: %v %+v", err, got)
	}
}

func TestAccountDomain(t *testing.T) {
	s, _ := openClock(t)
	ctx := context.Background()
	if _, err := s.AddDomain(ctx, "chat.example", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDomainProfile(ctx, "chat.example", true, `{"chatmail":"on"}`); err != nil {
		t.Fatal(err)
	}
	a, err := s.AddAccount(ctx, "alice@chat.example", "secret-password")
	if err != nil {
		t.Fatal(err)
	}
	deliverAt(t, s, a.ID, "INBOX", "one", 123, retentionEpoch)
	got, d, err := s.AccountDomain(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := s.AccountByID(ctx, a.ID)
	if *got != *want {
		t.Errorf("account %+v, want %+v", got, want)
	}
	wd, _ := s.Domain(ctx, "chat.example")
	if *d != *wd || d.Profile != `{"chatmail":"on"}` {
		t.Errorf("domain %+v, want %+v", d, wd)
	}
	if _, _, err := s.AccountDomain(ctx, 9999); err != ErrNotFound {
		t.Errorf("missing account: %v", err)
	}
}
