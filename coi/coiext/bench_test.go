package coiext

import (
	"context"
	"strings"
	"testing"

	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/store"
)

// BenchmarkCheck is the cost COI adds to one delivery of a 4 KB message: the
// classification, and for a chat message the recipient's configuration read (and
// for an account filing into COI/Chats, its account row).
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AddDomain(ctx, "example.org", false); err != nil {
		b.Fatal(err)
	}
	plain, err := st.AddAccount(ctx, "plain@example.org", "password-1")
	if err != nil {
		b.Fatal(err)
	}
	filer, err := st.AddAccount(ctx, "filer@example.org", "password-1")
	if err != nil {
		b.Fatal(err)
	}
	if err := st.SetCOIFiling(ctx, filer.Address, true); err != nil {
		b.Fatal(err)
	}
	filer.COIFiling = true
	x := New(Options{Store: st})
	if err := x.Set(ctx, filer, []Entry{{Name: EntryEnabled, Value: []byte("yes")}, {Name: EntryFilter, Value: []byte("active")}}); err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("x", 4000)
	chatMsg := []byte("From: a@example.net\r\nChat-Version: 1.0\r\nMessage-ID: <m@x>\r\nSubject: [...]\r\n\r\n" + body)
	mailMsg := []byte("From: a@example.net\r\nMessage-ID: <m@x>\r\nSubject: hello\r\n\r\n" + body)
	for _, bc := range []struct {
		name string
		msg  []byte
		acc  *store.Account
	}{
		{"mail", mailMsg, plain},
		{"chat-coi-off", chatMsg, plain},
		{"chat-filed", chatMsg, filer},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := &deliver.Message{Envelope: deliver.Envelope{Kind: deliver.MX, Recipients: []deliver.Recipient{{Address: bc.acc.Address, Accounts: []int64{bc.acc.ID}}}}, Body: bc.msg}
			b.SetBytes(int64(len(bc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := x.Check(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
