package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func setup(t *testing.T, s *Store, addrs ...string) []*Account {
	t.Helper()
	ctx := context.Background()
	if _, err := s.AddDomain(ctx, "example.org", false); err != nil {
		t.Fatal(err)
	}
	var out []*Account
	for _, a := range addrs {
		acc, err := s.AddAccount(ctx, a, "secret-password")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, acc)
	}
	return out
}

func verifyClean(t *testing.T, s *Store) {
	t.Helper()
	probs, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("verify: %s", p)
	}
}

func TestAccountsAndAuth(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	accs := setup(t, s, "Alice@Example.org")
	if accs[0].Address != "alice@example.org" {
		t.Fatalf("address not normalised: %q", accs[0].Address)
	}
	if _, err := s.AddAccount(ctx, "alice@example.org", "x"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate account: %v", err)
	}
	if _, err := s.AddAccount(ctx, "bob@elsewhere.org", "x"); !errors.Is(err, ErrNotLocal) {
		t.Fatalf("account in unknown domain: %v", err)
	}
	if _, err := s.Authenticate(ctx, "ALICE@example.org", "secret-password"); err != nil {
		t.Fatalf("good login: %v", err)
	}
	for _, tc := range []struct{ user, pass string }{{"alice@example.org", "wrong"}, {"nobody@example.org", "secret-password"}} {
		if _, err := s.Authenticate(ctx, tc.user, tc.pass); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("login %s/%s: %v, want ErrAuthFailed", tc.user, tc.pass, err)
		}
	}
	mbs, err := s.Mailboxes(ctx, accs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"INBOX": "", "Sent": `\Sent`, "Drafts": `\Drafts`, "Trash": `\Trash`, "Junk": `\Junk`, "Archive": `\Archive`}
	if len(mbs) != len(want) {
		t.Fatalf("got %d mailboxes, want %d", len(mbs), len(want))
	}
	for _, m := range mbs {
		if su, ok := want[m.Name]; !ok || su != m.SpecialUse {
			t.Errorf("mailbox %q special-use %q", m.Name, m.SpecialUse)
		}
	}
}

func TestResolve(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	accs := setup(t, s, "alice@example.org", "bob@example.org")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddAlias(ctx, "team@example.org", "alice@example.org"))
	must(s.AddAlias(ctx, "team@example.org", "bob@example.org"))
	must(s.AddAlias(ctx, "out@example.org", "someone@remote.example"))
	tests := []struct {
		addr     string
		accounts []int64
		forward  []string
		err      error
	}{
		{"alice@example.org", []int64{accs[0].ID}, nil, nil},
		{"ALICE@EXAMPLE.ORG", []int64{accs[0].ID}, nil, nil},
		{"alice+news@example.org", []int64{accs[0].ID}, nil, nil},
		{"team@example.org", []int64{accs[0].ID, accs[1].ID}, nil, nil},
		{"out@example.org", nil, []string{"someone@remote.example"}, nil},
		{"nobody@example.org", nil, nil, ErrNotFound},
		{"x@remote.example", nil, nil, ErrNotLocal},
	}
	for _, tc := range tests {
		r, err := s.Resolve(ctx, tc.addr)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: err %v, want %v", tc.addr, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.addr, err)
			continue
		}
		if fmt.Sprint(r.Accounts) != fmt.Sprint(tc.accounts) || fmt.Sprint(r.Forward) != fmt.Sprint(tc.forward) {
			t.Errorf("%s: got %v %v, want %v %v", tc.addr, r.Accounts, r.Forward, tc.accounts, tc.forward)
		}
	}
	must(s.AddAlias(ctx, "@example.org", "bob@example.org"))
	r, err := s.Resolve(ctx, "anything@example.org")
	if err != nil || fmt.Sprint(r.Accounts) != fmt.Sprint([]int64{accs[1].ID}) {
		t.Fatalf("catch-all: %v %v", r, err)
	}
	ok, _ := s.MaySendAs(ctx, accs[0].ID, "team@example.org")
	if !ok {
		t.Error("alice may send as team@")
	}
	ok, _ = s.MaySendAs(ctx, accs[0].ID, "bob@example.org")
	if ok {
		t.Error("alice must not send as bob@")
	}
}

func TestDeliverFlagsExpungeChanges(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]
	inbox, err := s.Mailbox(ctx, a.ID, "inbox")
	if err != nil {
		t.Fatal(err)
	}
	sub := s.Subscribe(a.ID)
	defer sub.Close()
	for i := 0; i < 3; i++ {
		res, _, err := s.Deliver(ctx, &Delivery{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nhello\r\n", i)), Targets: []Target{{AccountID: a.ID}}})
		if err != nil || res[0].Err != nil || res[0].UID != uint32(i+1) {
			t.Fatalf("deliver %d: %v %+v", i, err, res)
		}
	}
	select {
	case <-sub.C:
	case <-time.After(time.Second):
		t.Fatal("no poke after delivery")
	}
	mb, msgs, err := s.Snapshot(ctx, inbox.ID)
	if err != nil || len(msgs) != 3 || mb.UIDNext != 4 || mb.Unseen != 3 {
		t.Fatalf("snapshot: %v %+v %+v", err, mb, msgs)
	}
	up, err := s.StoreFlags(ctx, inbox.ID, []uint32{1, 2}, FlagsAdd, []string{`\seen`, `\DELETED`}, 0)
	if err != nil || len(up.Changed) != 2 || up.Changed[0].Flags[0] != `\Deleted` {
		t.Fatalf("store flags: %v %+v", err, up)
	}
	up, err = s.StoreFlags(ctx, inbox.ID, []uint32{1, 3}, FlagsAdd, []string{"$Chat"}, mb.HighestModSeq)
	if err != nil || fmt.Sprint(up.Modified) != "[1]" || len(up.Changed) != 1 {
		t.Fatalf("unchangedsince: %v %+v", err, up)
	}
	gone, err := s.Expunge(ctx, inbox.ID, nil)
	if err != nil || fmt.Sprint(gone) != "[1 2]" {
		t.Fatalf("expunge: %v %v", err, gone)
	}
	mb2, changed, expunged, err := s.Changes(ctx, inbox.ID, mb.HighestModSeq)
	if err != nil || fmt.Sprint(expunged) != "[1 2]" || len(changed) != 1 || changed[0].UID != 3 {
		t.Fatalf("changes: %v %+v %v", err, changed, expunged)
	}
	if mb2.Messages != 1 || mb2.Unseen != 1 {
		t.Fatalf("counters: %+v", mb2)
	}
	arch, _ := s.Mailbox(ctx, a.ID, "Archive")
	res, err := s.Move(ctx, inbox.ID, []uint32{3}, arch.ID)
	if err != nil || fmt.Sprint(res.Src, res.Dst) != "[3] [1]" {
		t.Fatalf("move: %v %+v", err, res)
	}
	if _, err := s.Copy(ctx, arch.ID, []uint32{1}, inbox.ID); err != nil {
		t.Fatal(err)
	}
	verifyClean(t, s)
	if err := s.DeleteAccount(ctx, a.Address); err != nil {
		t.Fatal(err)
	}
	verifyClean(t, s)
	st, _ := s.Stats(ctx)
	if st.Bodies != 0 {
		t.Fatalf("bodies left after account deletion: %d", st.Bodies)
	}
}

func TestQuota(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), Options{DefaultQuota: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := setup(t, s, "alice@example.org")[0]
	ctx := context.Background()
	body := make([]byte, 60)
	r, _, err := s.Deliver(ctx, &Delivery{Body: body, Targets: []Target{{AccountID: a.ID}}})
	if err != nil || r[0].Err != nil {
		t.Fatal(err, r)
	}
	r, _, err = s.Deliver(ctx, &Delivery{Body: body, Targets: []Target{{AccountID: a.ID}}})
	if err != nil || !errors.Is(r[0].Err, ErrOverQuota) {
		t.Fatalf("want over quota, got %v %+v", err, r)
	}
	verifyClean(t, s)
}

func TestRenameAndMetadata(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]
	if _, err := s.CreateMailbox(ctx, a.ID, "COI/Chats", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mailbox(ctx, a.ID, "COI"); err != nil {
		t.Fatal("parent not created:", err)
	}
	if err := s.RenameMailbox(ctx, a.ID, "COI", "Trash/COI"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mailbox(ctx, a.ID, "Trash/COI/Chats"); err != nil {
		t.Fatal("child not renamed:", err)
	}
	if err := s.DeleteMailbox(ctx, a.ID, "INBOX"); !errors.Is(err, ErrInboxName) {
		t.Fatalf("delete INBOX: %v", err)
	}
	err := s.SetMetadata(ctx, a.ID, 0, []MetaEntry{{Name: "/private/a", Value: []byte("1")}, {Name: "/private/a/b", Value: []byte("2")}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Metadata(ctx, a.ID, 0, []string{"/private/a"}, true)
	if err != nil || len(got) != 2 {
		t.Fatalf("metadata: %v %+v", err, got)
	}
	if err := s.SetMetadata(ctx, a.ID, 0, []MetaEntry{{Name: "/private/c", Value: []byte("3")}}, 2); !errors.Is(err, ErrMetadataTooMany) {
		t.Fatalf("limit: %v", err)
	}
	if err := s.SetMetadata(ctx, a.ID, 0, []MetaEntry{{Name: "/private/a"}}, 10); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Metadata(ctx, a.ID, 0, []string{"/private/a"}, false)
	if len(got) != 0 {
		t.Fatalf("delete: %+v", got)
	}
}

// TestGroupCommitConcurrent delivers from many goroutines and checks every message is
// stored exactly once with distinct UIDs.
func TestGroupCommitConcurrent(t *testing.T) {
	batches := 0
	var mu sync.Mutex
	s, err := Open(context.Background(), t.TempDir(), Options{Observe: func(n int, _ time.Duration) { mu.Lock(); batches++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := setup(t, s, "alice@example.org")[0]
	ctx := context.Background()
	var wg sync.WaitGroup
	const writers, each = 16, 25
	uids := make(chan uint32, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, _, err := s.Deliver(ctx, &Delivery{Body: []byte("Subject: x\r\n\r\nbody\r\n"), Targets: []Target{{AccountID: a.ID}}})
				if err != nil {
					t.Error(err)
					return
				}
				uids <- r[0].UID
			}
		}()
	}
	wg.Wait()
	close(uids)
	seen := map[uint32]bool{}
	for u := range uids {
		if seen[u] {
			t.Fatalf("uid %d twice", u)
		}
		seen[u] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d messages, want %d", len(seen), writers*each)
	}
	mu.Lock()
	defer mu.Unlock()
	if batches >= writers*each+2 {
		t.Errorf("no batching: %d commits for %d writes", batches, writers*each)
	}
	verifyClean(t, s)
}

func TestQueue(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]
	res, qid, err := s.Deliver(ctx, &Delivery{Body: []byte("x"), Targets: []Target{{AccountID: a.ID}},
		Remote: &Outbound{Sender: "alice@example.org", Recipients: []string{"x@remote.example", "y@other.example"}}})
	if err != nil || qid == 0 || len(res) != 1 {
		t.Fatal(err, qid, res)
	}
	due, err := s.QueueEntries(ctx, time.Now().Add(time.Minute), 0)
	if err != nil || len(due) != 1 || len(due[0].Rcpts) != 2 {
		t.Fatalf("due: %v %+v", err, due)
	}
	ups := []RcptUpdate{{ID: due[0].Rcpts[0].ID, State: RcptDelivered}, {ID: due[0].Rcpts[1].ID, State: RcptFailed, LastError: "550 no"}}
	if err := s.UpdateRcpts(ctx, ups, nil); err != nil {
		t.Fatal(err)
	}
	all, _ := s.QueueEntries(ctx, time.Time{}, 0)
	if len(all) != 0 {
		t.Fatalf("queue not emptied: %+v", all)
	}
	verifyClean(t, s)
}

func TestBackup(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]
	if _, _, err := s.Deliver(ctx, &Delivery{Body: []byte("hello"), Targets: []Target{{AccountID: a.ID}}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := s.Backup(ctx, dir); err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := b.Stats(ctx)
	if err != nil || st.Messages != 1 || st.Accounts != 1 {
		t.Fatalf("backup content: %v %+v", err, st)
	}
	verifyClean(t, b)
}

func TestSetQuota(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]
	if err := s.SetQuota(ctx, a.Address, 10, 0); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.Deliver(ctx, &Delivery{Body: make([]byte, 11), Targets: []Target{{AccountID: a.ID}}})
	if err != nil || !errors.Is(r[0].Err, ErrOverQuota) {
		t.Fatalf("want over quota: %v %+v", err, r)
	}
	if err := s.SetQuota(ctx, "nobody@example.org", 1, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
}

// TestWALReplaced makes the write-ahead log a new file under the store's feet (as
// SQLite does when its last connection closes and another opens) and checks that the
// store notices and keeps syncing the real log.
func TestWALReplaced(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	a := setup(t, s, "alice@example.org")[0]
	path := s.Path() + "-wal"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Same content, new inode: rename a copy over the original.
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Deliver(ctx, &Delivery{Body: []byte("x"), Targets: []Target{{AccountID: a.ID}}}); err != nil {
		t.Fatal(err)
	}
	held, err := s.wal.Stat()
	if err != nil {
		t.Fatal(err)
	}
	cur, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(held, cur) {
		t.Fatal("the store still syncs the replaced write-ahead log")
	}
}
