package retention

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coibox/coibox/coi/profile"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/store"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

const day = 24 * time.Hour

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func openStore(t *testing.T) (*store.Store, *clock) {
	t.Helper()
	clk := &clock{now: t0}
	st, err := store.Open(context.Background(), t.TempDir(), store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, clk
}

// addDomain serves a domain with the defaults of its kind changed by edit.
func addDomain(t *testing.T, st *store.Store, name string, chatmail bool, edit func(*profile.Profile)) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.AddDomain(ctx, name, chatmail); err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return
	}
	p := profile.Default(chatmail)
	edit(&p)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDomainProfile(ctx, name, chatmail, p.Encode()); err != nil {
		t.Fatal(err)
	}
}

func addAccount(t *testing.T, st *store.Store, clk *clock, address string, created time.Time) *store.Account {
	t.Helper()
	clk.Set(created)
	a, err := st.AddAccount(context.Background(), address, "secret-password")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// login logs an account in at the clock's time and waits for the store to record
// the day.
func login(t *testing.T, st *store.Store, clk *clock, address string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	clk.Set(at)
	if _, err := st.Authenticate(ctx, address, "secret-password"); err != nil {
		t.Fatal(err)
	}
	want := at.Unix() / 86400
	for deadline := time.Now().Add(5 * time.Second); ; {
		a, err := st.Account(ctx, address)
		if err != nil {
			t.Fatal(err)
		}
		if a.LastLogin.Unix()/86400 == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last login %v never recorded", address, at)
		}
		time.Sleep(time.Millisecond)
	}
}

type msg struct {
	mailbox int64
	uid     uint32
}

// deliver stores a message of exactly size bytes whose Subject is name.
func deliver(t *testing.T, st *store.Store, a *store.Account, box, name string, size int, date time.Time, flags ...string) msg {
	t.Helper()
	body := []byte("Subject: " + name + "\r\n\r\n")
	if size < len(body) {
		t.Fatalf("message %s: size %d is below its header", name, size)
	}
	body = append(body, strings.Repeat("x", size-len(body))...)
	r, _, err := st.Deliver(context.Background(), &store.Delivery{Body: body, InternalDate: date,
		Targets: []store.Target{{AccountID: a.ID, Mailbox: box, Flags: flags}}})
	if err != nil || r[0].Err != nil {
		t.Fatalf("deliver %s: %v %+v", name, err, r)
	}
	return msg{r[0].MailboxID, r[0].UID}
}

// subjects lists the Subjects of every message of an account, sorted.
func subjects(t *testing.T, st *store.Store, a *store.Account) []string {
	t.Helper()
	ctx := context.Background()
	boxes, err := st.Mailboxes(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range boxes {
		_, metas, err := st.Snapshot(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		var uids []uint32
		for _, m := range metas {
			uids = append(uids, m.UID)
		}
		ms, err := st.Messages(ctx, b.ID, uids)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			body, err := st.Body(ctx, m.BodyID)
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

func used(t *testing.T, st *store.Store, a *store.Account) int64 {
	t.Helper()
	cur, err := st.AccountByID(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	return cur.UsedBytes
}

func verify(t *testing.T, st *store.Store) {
	t.Helper()
	probs, err := st.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("verify: %s", p)
	}
}

func expect(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

// TestScenario15 is chatmail scenario 15 (spec §13): with the clock past 20 days,
// 7 days for large seen mail and 90 days idle, those messages and accounts are gone;
// trimming to 70 % never takes mail under 24 h old; an ordinary domain keeps all.
func TestScenario15(t *testing.T) {
	st, clk := openStore(t)
	ctx := context.Background()
	const maxSize = 2_000_000 // 70 %: 1,400,000
	addDomain(t, st, "chat.example", true, func(p *profile.Profile) { p.MaxMailboxSize = maxSize })
	addDomain(t, st, "mail.example", false, nil)
	now := t0.Add(92 * day) // 90 days idle: a cut-off at t0 + 2 d

	idleAcc := addAccount(t, st, clk, "idle@chat.example", t0) // never logs in
	lapsed := addAccount(t, st, clk, "lapsed@chat.example", t0)
	login(t, st, clk, lapsed.Address, t0.Add(day)) // its day ends at t0 + 1.5 d
	recent := addAccount(t, st, clk, "recent@chat.example", t0)
	login(t, st, clk, recent.Address, t0.Add(3*day)) // 89 days idle
	user := addAccount(t, st, clk, "user@chat.example", t0)
	full := addAccount(t, st, clk, "full@chat.example", t0)
	busy := addAccount(t, st, clk, "busy@chat.example", t0)
	plain := addAccount(t, st, clk, "plain@mail.example", t0) // ordinary, never logs in
	for _, a := range []*store.Account{user, full, busy} {
		login(t, st, clk, a.Address, now)
	}
	clk.Set(now)

	// The idle account's mail goes with it, however new.
	deliver(t, st, idleAcc, "INBOX", "idle-fresh", 1000, now.Add(-time.Hour))
	deliver(t, st, idleAcc, "Sent", "idle-old", 1000, now.Add(-30*day))
	deliver(t, st, idleAcc, "INBOX", "idle-mid", 1000, now.Add(-2*day), `\Seen`)
	deliver(t, st, lapsed, "INBOX", "lapsed-1", 1000, now.Add(-time.Hour))

	// user: the age and large-seen rules.
	gone1 := deliver(t, st, user, "INBOX", "old21d", 10_000, now.Add(-21*day), `\Seen`)
	deliver(t, st, user, "Archive", "old19d", 10_000, now.Add(-19*day), `\Seen`)
	gone2 := deliver(t, st, user, "INBOX", "large8dseen", 300_000, now.Add(-8*day), `\Seen`)
	deliver(t, st, user, "INBOX", "large8dunseen", 300_000, now.Add(-8*day))
	deliver(t, st, user, "INBOX", "large6dseen", 300_000, now.Add(-6*day), `\Seen`)
	deliver(t, st, user, "INBOX", "small8dseen", 1_000, now.Add(-8*day), `\Seen`)
	deliver(t, st, user, "INBOX", "exactly200kB8dseen", 200_000, now.Add(-8*day), `\Seen`)

	// full: over max_mailbox_size with mail under 24 h old, which stays.
	deliver(t, st, full, "INBOX", "f3d", 400_000, now.Add(-3*day))
	deliver(t, st, full, "Sent", "f2d", 400_000, now.Add(-2*day))
	deliver(t, st, full, "INBOX", "f24h", 800_000, now.Add(-24*time.Hour))
	deliver(t, st, full, "INBOX", "f23h59m", 800_000, now.Add(-24*time.Hour+time.Minute))
	deliver(t, st, full, "Archive", "f1h", 800_000, now.Add(-time.Hour))
	deliver(t, st, full, "INBOX", "f0", 800_000, now)

	// busy: trimmed oldest first across folders, to 70 % and no further.
	deliver(t, st, busy, "INBOX", "b10d", 500_000, now.Add(-10*day))
	deliver(t, st, busy, "Archive", "b9d", 500_000, now.Add(-9*day))
	deliver(t, st, busy, "Sent", "b8d", 500_000, now.Add(-8*day))
	deliver(t, st, busy, "INBOX", "b5d", 500_000, now.Add(-5*day))
	deliver(t, st, busy, "Archive", "b4d", 500_000, now.Add(-4*day))

	// plain: everything the chatmail rules would delete.
	deliver(t, st, plain, "INBOX", "p30d", 10_000, now.Add(-30*day))
	deliver(t, st, plain, "INBOX", "p10dlargeseen", 300_000, now.Add(-10*day), `\Seen`)
	deliver(t, st, plain, "INBOX", "pbig", 3_000_000, now.Add(-5*day))

	userInbox, err := st.Mailbox(ctx, user.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	j := New(Options{Store: st, Now: clk.Now, Batch: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	sum, err := j.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}

	for _, a := range []*store.Account{idleAcc, lapsed} {
		if _, err := st.Account(ctx, a.Address); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want deleted", a.Address, err)
		}
		_, err := st.CreateAccount(ctx, store.NewAccount{Address: a.Address, Password: "another-password", TombstonesSince: t0})
		if !errors.Is(err, store.ErrTombstoned) {
			t.Errorf("%s made again: %v, want ErrTombstoned", a.Address, err)
		}
	}
	if _, err := st.Account(ctx, recent.Address); err != nil {
		t.Errorf("recent: %v, want kept (89 days idle)", err)
	}
	expect(t, "user", subjects(t, st, user), "exactly200kB8dseen", "large6dseen", "large8dunseen", "old19d", "small8dseen")
	expect(t, "full", subjects(t, st, full), "f0", "f1h", "f23h59m")
	if u := used(t, st, full); u != 2_400_000 {
		t.Errorf("full uses %d, want 2,400,000 (over its 2 MB: mail under 24 h stays)", u)
	}
	expect(t, "busy", subjects(t, st, busy), "b4d", "b5d")
	if u := used(t, st, busy); u != 1_000_000 {
		t.Errorf("busy uses %d, want 1,000,000", u)
	}
	expect(t, "plain (ordinary domain)", subjects(t, st, plain), "p10dlargeseen", "p30d", "pbig")

	gone, err := st.ExpungedSince(ctx, userInbox.ID, userInbox.HighestModSeq)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{gone1.uid, gone2.uid}; !slices.Equal(gone, want) {
		t.Errorf("user INBOX expunged %v, want %v", gone, want)
	}
	want := Summary{Domains: 1, Accounts: 4, DeletedAccounts: 2, Expired: 1, Large: 1, Trimmed: 2, TrimmedBytes: 1_600_000 + 1_500_000}
	sum.Took = 0
	if sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if !strings.Contains(logs.String(), "retention: pass done") || !strings.Contains(logs.String(), "deleted_accounts=2") {
		t.Errorf("no summary logged:\n%s", logs.String())
	}
	verify(t, st)
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Messages != 13 || stats.Bodies != 13 {
		t.Errorf("%d messages, %d bodies left; want 13 and 13", stats.Messages, stats.Bodies)
	}

	// A second pass at the same time finds nothing to do.
	sum, err = j.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum.Took = 0
	if want := (Summary{Domains: 1, Accounts: 4}); sum != want {
		t.Errorf("second pass %+v, want %+v", sum, want)
	}
}

// TestOwnSettings: the settings decide, not the chatmail flag; a chatmail domain with
// every rule off keeps everything.
func TestOwnSettings(t *testing.T) {
	st, clk := openStore(t)
	ctx := context.Background()
	addDomain(t, st, "off.example", true, func(p *profile.Profile) {
		p.DeleteMailsAfter, p.DeleteLargeAfter, p.DeleteInactiveUsersAfter, p.TrimMailbox = 0, 0, 0, false
	})
	addDomain(t, st, "mail.example", false, func(p *profile.Profile) { p.DeleteMailsAfter = 30 * day })
	now := t0.Add(200 * day)
	off := addAccount(t, st, clk, "off@off.example", t0)
	plain := addAccount(t, st, clk, "plain@mail.example", t0)
	clk.Set(now)
	deliver(t, st, off, "INBOX", "ancient", 300_000, t0, `\Seen`)
	deliver(t, st, plain, "INBOX", "p31d", 1000, now.Add(-31*day))
	deliver(t, st, plain, "INBOX", "p29d", 1000, now.Add(-29*day))
	sum, err := New(Options{Store: st, Now: clk.Now}).Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "rules off", subjects(t, st, off), "ancient")
	expect(t, "ordinary with delete_mails_after=30d", subjects(t, st, plain), "p29d")
	if sum.Domains != 1 || sum.Expired != 1 || sum.DeletedAccounts != 0 {
		t.Errorf("summary %+v", sum)
	}
	verify(t, st)
}

func TestAfterDelivery(t *testing.T) {
	st, clk := openStore(t)
	ctx := context.Background()
	const maxSize = 1_000_000 // 75 %: 750,000; 70 %: 700,000
	addDomain(t, st, "chat.example", true, func(p *profile.Profile) { p.MaxMailboxSize = maxSize })
	addDomain(t, st, "notrim.example", true, func(p *profile.Profile) { p.MaxMailboxSize = maxSize; p.TrimMailbox = false })
	addDomain(t, st, "mail.example", false, nil)
	now := t0.Add(10 * day)
	a := addAccount(t, st, clk, "a@chat.example", t0)
	fresh := addAccount(t, st, clk, "fresh@chat.example", t0)
	notrim := addAccount(t, st, clk, "n@notrim.example", t0)
	plain := addAccount(t, st, clk, "p@mail.example", t0)
	clk.Set(now)
	j := New(Options{Store: st, Now: clk.Now})

	for i := 1; i <= 7; i++ {
		deliver(t, st, a, "INBOX", fmt.Sprintf("o%d", i), 100_000, now.Add(-2*day+time.Duration(i)*time.Minute))
	}
	deliver(t, st, a, "INBOX", "n1", 50_000, now) // 750,000: not over 75 %
	if err := j.AfterDelivery(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	expect(t, "at 75 %", subjects(t, st, a), "n1", "o1", "o2", "o3", "o4", "o5", "o6", "o7")
	deliver(t, st, a, "INBOX", "n2", 100, now) // over 75 %
	if err := j.AfterDelivery(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	// 750,100 → 650,100 without o1, the oldest; keeping it would leave 750,100.
	expect(t, "over 75 %", subjects(t, st, a), "n1", "n2", "o2", "o3", "o4", "o5", "o6", "o7")

	// Over 75 %, even over the maximum, with nothing 24 h old: nothing goes.
	for i := 0; i < 11; i++ {
		deliver(t, st, fresh, "INBOX", fmt.Sprintf("f%02d", i), 100_000, now.Add(-24*time.Hour+time.Second))
	}
	if err := j.AfterDelivery(ctx, fresh.ID); err != nil {
		t.Fatal(err)
	}
	if got := subjects(t, st, fresh); len(got) != 11 {
		t.Errorf("fresh mail trimmed: %v", got)
	}
	// No trim_mailbox, or an ordinary domain: nothing goes.
	for _, acc := range []*store.Account{notrim, plain} {
		for i := 0; i < 9; i++ {
			deliver(t, st, acc, "INBOX", fmt.Sprintf("x%d", i), 100_000, now.Add(-5*day))
		}
		if err := j.AfterDelivery(ctx, acc.ID); err != nil {
			t.Fatal(err)
		}
		if got := subjects(t, st, acc); len(got) != 9 {
			t.Errorf("%s trimmed: %v", acc.Address, got)
		}
	}
	// A missing account is no error.
	if err := j.AfterDelivery(ctx, 9999); err != nil {
		t.Errorf("missing account: %v", err)
	}
	verify(t, st)
}

// TestOneTrimPerAccount calls AfterDelivery and Pass on one account from many
// goroutines: only one trim runs at a time, and together they delete exactly what
// brings the account to 70 %.
func TestOneTrimPerAccount(t *testing.T) {
	st, clk := openStore(t)
	ctx := context.Background()
	addDomain(t, st, "chat.example", true, func(p *profile.Profile) { p.MaxMailboxSize = 1_000_000 })
	now := t0.Add(10 * day)
	a := addAccount(t, st, clk, "a@chat.example", t0)
	login(t, st, clk, a.Address, now)
	clk.Set(now)
	for i := 0; i < 10; i++ {
		deliver(t, st, a, "INBOX", fmt.Sprintf("m%d", i), 100_000, now.Add(-3*day+time.Duration(i)*time.Minute))
	}
	j := New(Options{Store: st, Now: clk.Now, Batch: 1})
	var inflight, most, calls atomic.Int32
	real := j.trimAccount
	j.trimAccount = func(ctx context.Context, id, target int64, notNewerThan time.Time) (int64, error) {
		calls.Add(1)
		n := inflight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		defer inflight.Add(-1)
		time.Sleep(20 * time.Millisecond)
		return real(ctx, id, target, notNewerThan)
	}
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Go(func() {
			if err := j.AfterDelivery(ctx, a.ID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		if _, err := j.Pass(ctx); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d trims of one account ran at once", most.Load())
	}
	if calls.Load() < 1 {
		t.Error("no trim ran")
	}
	expect(t, "survivors", subjects(t, st, a), "m3", "m4", "m5", "m6", "m7", "m8", "m9")
	if u := used(t, st, a); u != 700_000 {
		t.Errorf("uses %d, want 700,000", u)
	}
	verify(t, st)
}

// TestTrimLooksAgain: a delivery that comes while a trim runs, after that trim last
// read the usage, is trimmed by it before it ends.
func TestTrimLooksAgain(t *testing.T) {
	st, clk := openStore(t)
	ctx := context.Background()
	addDomain(t, st, "chat.example", true, func(p *profile.Profile) { p.MaxMailboxSize = 1_000_000 })
	now := t0.Add(10 * day)
	a := addAccount(t, st, clk, "a@chat.example", t0)
	clk.Set(now)
	for i := 0; i < 8; i++ {
		deliver(t, st, a, "INBOX", fmt.Sprintf("m%d", i), 100_000, now.Add(-3*day+time.Duration(i)*time.Minute))
	}
	j := New(Options{Store: st, Now: clk.Now})
	real := j.trimAccount
	var calls int
	j.trimAccount = func(ctx context.Context, id, target int64, notNewerThan time.Time) (int64, error) {
		calls++
		freed, err := real(ctx, id, target, notNewerThan)
		if calls == 1 {
			// Two more, then their delivery's own call, while this trim still runs.
			deliver(t, st, a, "INBOX", "late1", 100_000, now.Add(-2*day))
			deliver(t, st, a, "INBOX", "late2", 100_000, now.Add(-2*day))
			if err := j.AfterDelivery(ctx, a.ID); err != nil {
				t.Error(err)
			}
		}
		return freed, err
	}
	if err := j.AfterDelivery(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("trimmed %d times, want 2", calls)
	}
	if u := used(t, st, a); u != 700_000 {
		t.Errorf("uses %d, want 700,000", u)
	}
	expect(t, "survivors", subjects(t, st, a), "late1", "late2", "m3", "m4", "m5", "m6", "m7")
	verify(t, st)
}

// TestLoggedInWhileEmptied: an idle account that logs in while it is being emptied
// is kept.
func TestLoggedInWhileEmptied(t *testing.T) {
	st, clk := openStore(t)
	ctx := context.Background()
	addDomain(t, st, "chat.example", true, func(p *profile.Profile) { p.DeleteMailsAfter = 0 })
	now := t0.Add(100 * day)
	a := addAccount(t, st, clk, "a@chat.example", t0)
	clk.Set(now)
	for i := 0; i < 3; i++ {
		deliver(t, st, a, "INBOX", fmt.Sprintf("m%d", i), 1000, now.Add(-time.Duration(i+1)*time.Hour))
	}
	j := New(Options{Store: st, Now: clk.Now, Batch: 1})
	idleList, err := st.InactiveAccounts(ctx, a.DomainID, now.Add(-90*day))
	if err != nil || len(idleList) != 1 {
		t.Fatalf("inactive: %v %+v", err, idleList)
	}
	login(t, st, clk, a.Address, now) // after the listing
	deleted, err := j.deleteIdle(ctx, &idleList[0], now.Add(-90*day))
	if err != nil || deleted {
		t.Fatalf("deleteIdle: %v, %v; want kept", deleted, err)
	}
	if _, err := st.Account(ctx, a.Address); err != nil {
		t.Errorf("account: %v", err)
	}
	// One batch went before the login was seen; the rest stays.
	expect(t, "survivors", subjects(t, st, a), "m0", "m1")
	verify(t, st)
}

func TestRun(t *testing.T) {
	st, clk := openStore(t)
	addDomain(t, st, "chat.example", true, nil)
	a := addAccount(t, st, clk, "a@chat.example", t0)
	clk.Set(t0.Add(10 * day))
	deliver(t, st, a, "INBOX", "young", 1000, t0.Add(9*day))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Store: st, Now: clk.Now, Interval: 10 * time.Millisecond}) }()
	time.Sleep(50 * time.Millisecond)
	if got := subjects(t, st, a); len(got) != 1 {
		t.Fatalf("before the clock moved: %v", got)
	}
	clk.Set(t0.Add(30 * day)) // young is now 21 days old
	for deadline := time.Now().Add(5 * time.Second); len(subjects(t, st, a)) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("a later pass did not expire the message")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestPercent(t *testing.T) {
	for _, tc := range []struct{ n, pc, want int64 }{
		{1_000_000, 75, 750_000},
		{int64(500 * config.MiB), 70, 367_001_600},
		{99, 70, 69},
		{1 << 62, 75, 3 << 60},
	} {
		if got := percent(tc.n, tc.pc); got != tc.want {
			t.Errorf("percent(%d, %d) = %d, want %d", tc.n, tc.pc, got, tc.want)
		}
	}
}
