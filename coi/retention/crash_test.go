package retention

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coibox/coibox/coi/profile"
	"github.com/coibox/coibox/store"
)

// TestKill9DuringExpiry kills a process running the daily job with SIGKILL while it
// deletes old mail, three times over, then lets a new one finish. After every kill
// the store must verify clean (each batch is one transaction: a kill loses no
// counter, body reference or expunge record half-way), and in the end every old
// message is gone and every recent one is still there.
func TestKill9DuringExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const accounts, oldPer, newPer = 4, 500, 25
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addDomain(t, st, "mail.example", false, func(p *profile.Profile) { p.DeleteMailsAfter = 30 * day })
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, accounts)
	for i := range accounts {
		a, err := st.AddAccount(ctx, fmt.Sprintf("u%d@mail.example", i), "secret-password")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range oldPer + newPer {
				date := now.Add(-60 * day)
				if j >= oldPer {
					date = now.Add(-time.Hour)
				}
				body := fmt.Appendf(nil, "Subject: %d/%d\r\n\r\nhello\r\n", i, j)
				if _, _, err := st.Deliver(ctx, &store.Delivery{Body: body, InternalDate: date,
					Targets: []store.Target{{AccountID: a.ID, Mailbox: "INBOX"}}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st.Close()

	count := func() int {
		t.Helper()
		st, err := store.Open(ctx, dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		problems, err := st.Verify(ctx)
		if err != nil || len(problems) > 0 {
			t.Fatalf("verify: %v %v", err, problems)
		}
		n := 0
		for i := range accounts {
			a, err := st.Account(ctx, fmt.Sprintf("u%d@mail.example", i))
			if err != nil {
				t.Fatal(err)
			}
			n += int(a.UsedMsgs)
		}
		return n
	}
	const all = accounts * (oldPer + newPer)
	var left []int
	midway := false
	for k := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9DuringExpiryChild$", "-test.v")
		cmd.Env = append(os.Environ(), "COIBOX_RETENTION_CHILD="+dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The child opens the store, then deletes 5 messages a write: a few
		// milliseconds in, it is in the middle.
		time.Sleep(time.Duration(40+30*k) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		n := count()
		left = append(left, n)
		if n < all && n > accounts*newPer {
			midway = true
		}
	}
	if !midway {
		t.Fatalf("no kill landed while old mail was being deleted (messages left after each: %v of %d)", left, all)
	}

	st, err = store.Open(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Store: st, Batch: 5}).Pass(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	got := count()
	t.Logf("messages left after each kill: %v of %d; after the last pass: %d", left, all, got)
	if got != accounts*newPer {
		t.Errorf("%d messages left, want the %d recent ones", got, accounts*newPer)
	}
}

// TestKill9DuringExpiryChild is the child process of TestKill9DuringExpiry.
func TestKill9DuringExpiryChild(t *testing.T) {
	dir := os.Getenv("COIBOX_RETENTION_CHILD")
	if dir == "" {
		t.Skip("only runs as TestKill9DuringExpiry's child")
	}
	st, err := store.Open(context.Background(), dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = New(Options{Store: st, Batch: 5}).Pass(context.Background()) // until killed
	select {}
}
