package imapd

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestConcurrentIdleDelivery: clients idle on INBOX while messages are delivered in a
// loop. On every "* N EXISTS" a client leaves IDLE and fetches the new messages by
// sequence number at once, as Delta Chat does; every one must be there, every time.
// Then a flag change by one client must reach the others while they idle.
func TestConcurrentIdleDelivery(t *testing.T) {
	const clients, messages = 4, 300
	e := newEnv(t)
	type client struct {
		c      *imapclient.Client
		exists chan uint32
		flags  atomic.Int32
	}
	cs := make([]*client, clients)
	for i := range cs {
		cl := &client{exists: make(chan uint32, messages+10)}
		cl.c = e.dial(t, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					cl.exists <- *d.NumMessages
				}
			},
			Fetch: func(m *imapclient.FetchMessageData) {
				buf, err := m.Collect()
				if err == nil && len(buf.Flags) > 0 && buf.Flags[0] == imap.FlagFlagged {
					cl.flags.Add(1)
				}
			},
		}})
		if _, err := cl.c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		cs[i] = cl
	}

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, cl := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var have uint32
			for have < messages {
				idle, err := cl.c.Idle()
				if err != nil {
					errs <- fmt.Errorf("client %d: IDLE: %w", i, err)
					return
				}
				var n uint32
				select {
				case n = <-cl.exists:
				case <-time.After(20 * time.Second):
					errs <- fmt.Errorf("client %d: no EXISTS after %d messages", i, have)
					return
				}
				if err := idle.Close(); err != nil {
					errs <- err
					return
				}
				if err := idle.Wait(); err != nil {
					errs <- err
					return
				}
				// EXISTS may have grown further while leaving IDLE.
				for more := true; more; {
					select {
					case n = <-cl.exists:
					default:
						more = false
					}
				}
				if n <= have {
					continue
				}
				var seqs imap.SeqSet
				seqs.AddRange(have+1, n)
				msgs, err := cl.c.Fetch(seqs, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
				if err != nil {
					errs <- fmt.Errorf("client %d: FETCH %v: %w", i, seqs, err)
					return
				}
				if uint32(len(msgs)) != n-have {
					errs <- fmt.Errorf("client %d: EXISTS %d but FETCH %v returned %d messages", i, n, seqs, len(msgs))
					return
				}
				for _, m := range msgs {
					if m.Envelope == nil || m.Envelope.Subject != fmt.Sprintf("msg %d", m.UID) {
						errs <- fmt.Errorf("client %d: message %d has envelope %+v", i, m.UID, m.Envelope)
						return
					}
				}
				have = n
			}
		}()
	}
	for i := 1; i <= messages; i++ {
		e.deliver(e.acc, "INBOX", testMessage(i, fmt.Sprintf("msg %d", i)))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// Flags: client 0 flags ten messages; the others hear it while idling.
	var idles []*imapclient.IdleCommand
	for _, cl := range cs[1:] {
		idle, err := cl.c.Idle()
		if err != nil {
			t.Fatal(err)
		}
		idles = append(idles, idle)
	}
	if err := cs[0].c.Store(imap.UIDSetNum(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, cl := range cs[1:] {
		for cl.flags.Load() < 10 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i, cl := range cs[1:] {
		if n := cl.flags.Load(); n != 10 {
			t.Errorf("client %d heard %d flag changes, want 10", i+1, n)
		}
		if err := idles[i].Close(); err != nil {
			t.Fatal(err)
		}
		if err := idles[i].Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if n := cs[0].flags.Load(); n != 0 {
		t.Errorf("client 0 heard %d unsolicited flag changes of its own STORE.SILENT", n)
	}
	if err := cs[0].c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if n := cs[0].flags.Load(); n != 0 {
		t.Errorf("client 0 heard its own changes again after NOOP: %d", n)
	}
}
