package imapd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/store"
)

// The model tests check the invariant behind issue 7 against a model of what each
// account owns: every answer a session gets names only messages that its account put
// into that mailbox, whatever other sessions create, fill and delete meanwhile.

// boxModel is what one account owns: mailbox name → subjects appended, in order.
type boxModel map[string][]string

var modelBoxes = []string{"A", "B", "C/D"}

// TestReuseRandomized runs several workers at once, each an account that creates,
// fills, reads and deletes mailboxes and is itself deleted and made again, all over
// IMAP with go-imap's client, and checks every FETCH and SEARCH against its model.
func TestReuseRandomized(t *testing.T) {
	e := newEnv(t)
	const workers, ops = 6, 250
	deadline := time.Now().Add(20 * time.Second) // bounded even on a slow machine
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			if err := modelWorker(e, w, rng, ops, deadline); err != nil {
				errs <- fmt.Errorf("worker %d: %w", w, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// modelWorker is one account's life (and its successors') under random operations.
func modelWorker(e *testEnv, w int, rng *rand.Rand, ops int, deadline time.Time) error {
	ctx := context.Background()
	gen := 0
	var (
		c     *imapclient.Client
		addr  string
		model boxModel
	)
	login := func() error {
		gen++
		addr = fmt.Sprintf("w%d-g%d@example.org", w, gen)
		if _, err := e.st.AddAccount(ctx, addr, testPassword); err != nil {
			return err
		}
		var err error
		if c, err = imapclient.DialInsecure(e.addr, nil); err != nil {
			return err
		}
		model = boxModel{}
		return c.Login(addr, testPassword).Wait()
	}
	if err := login(); err != nil {
		return err
	}
	defer func() { c.Close() }()
	for n := 0; n < ops && time.Now().Before(deadline); n++ {
		box := modelBoxes[rng.IntN(len(modelBoxes))]
		_, exists := model[box]
		switch op := rng.IntN(20); {
		case op < 3: // create
			err := c.Create(box, nil).Wait()
			if exists != (err != nil) {
				return fmt.Errorf("%s CREATE %s (exists %v): %v", addr, box, exists, err)
			}
			// CREATE makes missing parents too: they hold nothing and are not used.
			if !exists {
				model[box] = nil
			}
		case op < 10: // append
			if !exists {
				continue
			}
			subj := fmt.Sprintf("%s-%s-%d.", addr, box, n)
			msg := fmt.Sprintf("From: x@example.net\r\nSubject: %s\r\nMessage-ID: <%d@x>\r\n\r\n%s\r\n", subj, n, bytes.Repeat([]byte("z"), rng.IntN(200)))
			ac := c.Append(box, int64(len(msg)), nil)
			if _, err := ac.Write([]byte(msg)); err != nil {
				return err
			}
			if err := ac.Close(); err != nil {
				return err
			}
			if _, err := ac.Wait(); err != nil {
				return fmt.Errorf("%s APPEND %s: %v", addr, box, err)
			}
			model[box] = append(model[box], subj)
		case op < 16: // read through the cache
			if !exists {
				continue
			}
			if err := checkBox(c, addr, box, model[box]); err != nil {
				return err
			}
		case op < 19: // delete
			if !exists {
				continue
			}
			if err := c.Delete(box).Wait(); err != nil {
				return fmt.Errorf("%s DELETE %s: %v", addr, box, err)
			}
			delete(model, box)
		default: // the account goes, and a new one comes
			if err := e.st.DeleteAccount(ctx, addr); err != nil {
				return err
			}
			// The server says goodbye and closes the connection.
			select {
			case <-c.Closed():
			case <-time.After(5 * time.Second):
				return fmt.Errorf("%s: the connection stayed open after the account's deletion", addr)
			}
			c.Close()
			if err := login(); err != nil {
				return err
			}
		}
	}
	return c.Logout().Wait()
}

// checkBox selects box and compares every subject and the SEARCH answers with want.
func checkBox(c *imapclient.Client, addr, box string, want []string) error {
	sel, err := c.Select(box, nil).Wait()
	if err != nil {
		return fmt.Errorf("%s SELECT %s: %v", addr, box, err)
	}
	if int(sel.NumMessages) != len(want) {
		return fmt.Errorf("%s SELECT %s: %d messages, model has %d", addr, box, sel.NumMessages, len(want))
	}
	var got []string
	if len(want) > 0 {
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true, RFC822Size: true}).Collect()
		if err != nil {
			return fmt.Errorf("%s FETCH %s: %v", addr, box, err)
		}
		for _, m := range msgs {
			if m.Envelope == nil {
				return fmt.Errorf("%s FETCH %s: message %d without ENVELOPE", addr, box, m.SeqNum)
			}
			got = append(got, m.Envelope.Subject)
		}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s FETCH %s ENVELOPE: subjects %q, model %q", addr, box, got, want)
	}
	// SEARCH answers from the same cache: "w" (every subject starts with it) must
	// find exactly this mailbox's messages.
	sr, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "w"}}}, nil).Wait()
	if err != nil {
		return fmt.Errorf("%s SEARCH %s: %v", addr, box, err)
	}
	if n := len(sr.AllSeqNums()); n != len(want) {
		return fmt.Errorf("%s SEARCH %s SUBJECT w: %d hits, model has %d messages", addr, box, n, len(want))
	}
	return c.Unselect().Wait()
}

// FuzzReuse drives the store and the summary cache (no network) with operations
// taken from the input, over two accounts that are deleted and made again, and
// checks every read of the cache against the model.
func FuzzReuse(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 0, 3, 0, 0, 0, 1, 0, 2, 0})
	f.Add([]byte{0, 1, 1, 1, 2, 1, 4, 1, 0, 4, 1, 4, 2, 4, 2, 1})
	f.Add([]byte{0, 0, 1, 0, 1, 0, 2, 0, 4, 0, 0, 5, 1, 5, 2, 5, 3, 5, 0, 5, 2, 5})
	ctx := context.Background()
	st, err := store.Open(ctx, f.TempDir(), store.Options{Summarize: Summarize})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	if _, err := st.AddDomain(ctx, "example.org", false); err != nil {
		f.Fatal(err)
	}
	// One cache for all runs, as one server has: what a run leaves in it must not
	// show in the next.
	cache := newSumCache(1 << 20)
	st.OnRemoved(cache.drop)
	gen := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		type acct struct {
			a     *store.Account
			model boxModel
		}
		var accts [2]acct
		newAcct := func(i int) {
			gen++
			a, err := st.AddAccount(ctx, fmt.Sprintf("f%d-%d@example.org", i, gen), testPassword)
			if err != nil {
				t.Fatal(err)
			}
			accts[i] = acct{a: a, model: boxModel{}}
		}
		newAcct(0)
		newAcct(1)
		defer func() {
			for _, x := range accts {
				_ = st.DeleteAccount(ctx, x.a.Address)
			}
		}()
		// Bounded: every op is a durable write, and an account costs an argon2 hash.
		recreated := 0
		for k := 0; k+1 < len(data) && k < 128; k += 2 {
			op, arg := data[k]%5, data[k+1]
			x := &accts[arg%2]
			box := modelBoxes[int(arg/2)%len(modelBoxes)]
			_, exists := x.model[box]
			switch op {
			case 0:
				_, err := st.CreateMailbox(ctx, x.a.ID, box, "")
				if exists != errors.Is(err, store.ErrExists) {
					t.Fatalf("create %s: %v (exists %v)", box, err, exists)
				}
				if !exists {
					x.model[box] = nil
				}
			case 1:
				if !exists {
					continue
				}
				subj := fmt.Sprintf("%s-%s-%d", x.a.Address, box, k)
				res, _, err := st.Deliver(ctx, &store.Delivery{
					Body:    []byte("Subject: " + subj + "\r\n\r\nx\r\n"),
					Targets: []store.Target{{AccountID: x.a.ID, Mailbox: box}},
				})
				if err != nil || res[0].Err != nil {
					t.Fatalf("deliver: %v %v", err, res)
				}
				x.model[box] = append(x.model[box], subj)
			case 2:
				if !exists {
					continue
				}
				mb, err := st.Mailbox(ctx, x.a.ID, box)
				if err != nil {
					t.Fatal(err)
				}
				var uids []uint32
				if _, metas, err := st.Snapshot(ctx, mb.ID); err != nil {
					t.Fatal(err)
				} else {
					for _, m := range metas {
						uids = append(uids, m.UID)
					}
				}
				ents, err := cache.get(ctx, st, boxKey{account: x.a.ID, mailbox: mb.ID, uidValidity: mb.UIDValidity}, uids)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range ents {
					s, ok := parseSummary(e.sum)
					if !e.ok || !ok {
						t.Fatalf("%s: entry without summary", box)
					}
					env := s.envelope(false)
					got = append(got, string(env))
				}
				if len(got) != len(x.model[box]) {
					t.Fatalf("%s of %s: %d entries, model %d", box, x.a.Address, len(got), len(x.model[box]))
				}
				for i, subj := range x.model[box] {
					if !bytes.Contains([]byte(got[i]), []byte(`"`+subj+`"`)) {
						t.Fatalf("%s of %s: entry %d is %s, want subject %q", box, x.a.Address, i, got[i], subj)
					}
				}
			case 3:
				if !exists {
					continue
				}
				if err := st.DeleteMailbox(ctx, x.a.ID, box); err != nil {
					t.Fatal(err)
				}
				delete(x.model, box)
			case 4:
				if recreated++; recreated > 4 {
					continue
				}
				if err := st.DeleteAccount(ctx, x.a.Address); err != nil {
					t.Fatal(err)
				}
				newAcct(int(arg % 2))
			}
		}
	})
}

// TestCacheKeyAndDrop: entries cached under one mailbox incarnation are never
// returned for another key, even one with the same row id (as a reused id would
// be), and drop frees exactly the deleted mailboxes and accounts.
func TestCacheKeyAndDrop(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	bob := e.addAccount("bob@example.org")
	e.deliverRaw(bob, "INBOX", harmlessMsg("bob@example.org"))
	mb, err := e.st.Mailbox(ctx, bob.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	c := newSumCache(1 << 20)
	// What alice's deleted mailbox left behind under the same row id.
	stale := boxKey{account: e.acc.ID, mailbox: mb.ID, uidValidity: mb.UIDValidity - 1}
	c.boxes[stale] = &boxCache{uids: []uint32{1}, ents: []sumEntry{{date: 1, size: 443, sum: Summarize([]byte(secretMsg)), ok: true}}}
	key := boxKey{account: bob.ID, mailbox: mb.ID, uidValidity: mb.UIDValidity}
	ents, err := c.get(ctx, e.st, key, []uint32{1})
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || !ents[0].ok || ents[0].size != int64(len(harmlessMsg("bob@example.org"))) {
		t.Fatalf("get under bob's key: %+v", ents)
	}
	if s, ok := parseSummary(ents[0].sum); !ok || !bytes.Contains(s.envelope(false), []byte(`"harmless"`)) {
		t.Fatalf("get under bob's key answered %q", ents[0].sum)
	}
	if c.bytes <= 0 {
		t.Fatalf("cache accounts %d bytes after a load", c.bytes)
	}

	other := boxKey{account: e.acc.ID, mailbox: mb.ID + 1000, uidValidity: 1}
	c.boxes[other] = &boxCache{}
	c.drop(store.Removed{Mailboxes: []int64{mb.ID}})
	if _, ok := c.boxes[key]; ok {
		t.Error("drop of the mailbox kept its entries")
	}
	if _, ok := c.boxes[stale]; ok {
		t.Error("drop of the mailbox kept an older incarnation's entries")
	}
	if _, ok := c.boxes[other]; !ok {
		t.Error("drop of one mailbox dropped another")
	}
	if c.bytes != 0 {
		t.Errorf("cache accounts %d bytes after dropping everything it loaded", c.bytes)
	}
	c.drop(store.Removed{Accounts: []int64{e.acc.ID}})
	if len(c.boxes) != 0 {
		t.Errorf("drop of the account left %d mailboxes", len(c.boxes))
	}
}
