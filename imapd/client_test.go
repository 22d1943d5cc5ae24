package imapd

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/store"
)

// dial logs in with go-imap's client.
func (e *testEnv) dial(t testing.TB, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice@example.org", testPassword).Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	return c
}

func TestClientBasics(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 5; i++ {
		e.deliver(e.acc, "INBOX", testMessage(i, []string{"", "lunch", "dinner", "Lunch plans", "report"}[i-1]))
	}
	c := e.dial(t, nil)
	if !c.Caps().Has(imap.CapIdle) || !c.Caps().Has(imap.CapMove) || !c.Caps().Has("METADATA") {
		t.Errorf("capabilities after login: %v", c.Caps())
	}

	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	got := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		got[l.Mailbox] = l.Attrs
	}
	for name, use := range map[string]imap.MailboxAttr{"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash, "Junk": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive} {
		if !hasAttr(got[name], use) {
			t.Errorf("LIST %s attrs %v, want %s", name, got[name], use)
		}
	}
	if _, ok := got["INBOX"]; !ok || len(list) != 6 {
		t.Errorf("LIST = %v", got)
	}

	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 5 || sel.UIDNext != 6 || sel.UIDValidity == 0 || sel.HighestModSeq == 0 {
		t.Fatalf("SELECT = %+v, %v", sel, err)
	}

	whole := &imap.FetchItemBodySection{Peek: true}
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID", "Subject"}, Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(2), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, RFC822Size: true, InternalDate: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{whole, hdr},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH: %v %d", err, len(msgs))
	}
	m := msgs[0]
	body := strings.ReplaceAll(testMessage(2, "lunch"), "\n", "\r\n")
	if m.UID != 2 || m.Envelope.Subject != "lunch" || m.RFC822Size != int64(len(body)) || string(m.FindBodySection(whole)) != body {
		t.Errorf("FETCH = uid %d env %+v size %d body %q", m.UID, m.Envelope, m.RFC822Size, m.FindBodySection(whole))
	}
	if got := string(m.FindBodySection(hdr)); got != "Message-ID: <m2@example.org>\r\nSubject: lunch\r\n\r\n" {
		t.Errorf("BODY[HEADER.FIELDS] = %q", got)
	}
	if bs, ok := m.BodyStructure.(*imap.BodyStructureSinglePart); !ok || bs.Type != "text" || bs.Subtype != "plain" {
		t.Errorf("BODYSTRUCTURE = %#v", m.BodyStructure)
	}

	// STORE, then SEARCH on flags and on text.
	if err := c.Store(imap.UIDSetNum(1, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen, "$Chat"}}, nil).Close(); err != nil {
		t.Fatalf("STORE: %v", err)
	}
	searches := []struct {
		name string
		crit imap.SearchCriteria
		want []imap.UID
	}{
		{"seen", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, []imap.UID{1, 3}},
		{"unseen", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []imap.UID{2, 4, 5}},
		{"keyword", imap.SearchCriteria{Flag: []imap.Flag{"$chat"}}, []imap.UID{1, 3}},
		{"subject", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "LUNCH"}}}, []imap.UID{2, 4}},
		{"body", imap.SearchCriteria{Body: []string{"number 4"}}, []imap.UID{4}},
		{"text", imap.SearchCriteria{Text: []string{"M5@EXAMPLE"}}, []imap.UID{5}},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"number 1."}}, {Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "report"}}}}}}, []imap.UID{1, 5}},
		{"not uid", imap.SearchCriteria{Not: []imap.SearchCriteria{{UID: []imap.UIDSet{imap.UIDSetNum(1, 2)}}}}, []imap.UID{3, 4, 5}},
		{"header any", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Content-Type", Value: ""}}}, []imap.UID{1, 2, 3, 4, 5}},
		{"larger", imap.SearchCriteria{Larger: 10}, []imap.UID{1, 2, 3, 4, 5}},
		{"sent since", imap.SearchCriteria{SentSince: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), SentBefore: time.Date(2026, 9, 2, 0, 0, 0, 0, time.UTC)}, []imap.UID{1, 2, 3, 4, 5}},
		{"since future", imap.SearchCriteria{Since: time.Now().AddDate(0, 0, 2)}, nil},
	}
	for _, tc := range searches {
		res, err := c.UIDSearch(&tc.crit, nil).Wait()
		if err != nil {
			t.Errorf("UID SEARCH %s: %v", tc.name, err)
			continue
		}
		if got := res.AllUIDs(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("UID SEARCH %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	es, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
	if err != nil || es.Min != 1 || es.Max != 3 || es.Count != 2 {
		t.Errorf("ESEARCH = %+v, %v", es, err)
	}

	// COPY and MOVE report COPYUID.
	cp, err := c.Copy(imap.UIDSetNum(1, 2), "Archive").Wait()
	if err != nil || cp.UIDValidity == 0 || cp.DestUIDs.String() != "1:2" || cp.SourceUIDs.String() != "1:2" {
		t.Errorf("COPY = %+v, %v", cp, err)
	}
	mv, err := c.Move(imap.UIDSetNum(5), "Trash").Wait()
	if err != nil || mv.DestUIDs.String() != "1" {
		t.Errorf("MOVE = %+v, %v", mv, err)
	}
	if c.Mailbox().NumMessages != 4 {
		t.Errorf("after MOVE the client counts %d messages, want 4", c.Mailbox().NumMessages)
	}

	// EXPUNGE of \Deleted messages.
	if err := c.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	exp, err := c.Expunge().Collect()
	if err != nil || !reflect.DeepEqual(exp, []uint32{3}) {
		t.Errorf("EXPUNGE = %v, %v", exp, err)
	}

	// APPEND reports APPENDUID.
	msg := []byte("Subject: appended\r\n\r\nhi\r\n")
	ap := c.Append("Drafts", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	ap.Write(msg)
	ap.Close()
	ad, err := ap.Wait()
	if err != nil || ad.UID != 1 || ad.UIDValidity == 0 {
		t.Errorf("APPEND = %+v, %v", ad, err)
	}
	st, err := c.Status("Drafts", &imap.StatusOptions{NumMessages: true, UIDNext: true, Size: true, HighestModSeq: true}).Wait()
	if err != nil || *st.NumMessages != 1 || st.UIDNext != 2 || *st.Size != int64(len(msg)) {
		t.Errorf("STATUS = %+v, %v", st, err)
	}

	// METADATA: private entries round-trip; server entries come from the store's
	// server account.
	if err := e.st.SetMetadata(context.Background(), store.Server, 0, []store.MetaEntry{{Name: "/shared/admin", Value: []byte("mailto:root@example.org")}}, 0); err != nil {
		t.Fatal(err)
	}
	val := []byte("1111")
	if err := c.SetMetadata("INBOX", map[string]*[]byte{"/private/devicetoken": &val}).Wait(); err != nil {
		t.Fatalf("SETMETADATA: %v", err)
	}
	md, err := c.GetMetadata("INBOX", []string{"/private/devicetoken"}, nil).Wait()
	if err != nil || md.Entries["/private/devicetoken"] == nil || string(*md.Entries["/private/devicetoken"]) != "1111" {
		t.Errorf("GETMETADATA INBOX = %+v, %v", md, err)
	}
	md, err = c.GetMetadata("", []string{"/shared/admin", "/shared/comment"}, nil).Wait()
	if err != nil || md.Entries["/shared/admin"] == nil || string(*md.Entries["/shared/admin"]) != "mailto:root@example.org" || md.Entries["/shared/comment"] != nil {
		t.Errorf("GETMETADATA \"\" = %+v, %v", md, err)
	}
}

func TestClientQuota(t *testing.T) {
	e := newEnvStore(t, store.Options{Summarize: Summarize, DefaultQuota: 10 << 10})
	e.deliver(e.acc, "INBOX", testMessage(1, "x"))
	c := e.dial(t, nil)
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(roots) != 1 || roots[0].Root != "" {
		t.Fatalf("GETQUOTAROOT = %+v, %v", roots, err)
	}
	st := roots[0].Resources[imap.QuotaResourceStorage]
	if st.Limit != 10 || st.Usage != 1 {
		t.Errorf("STORAGE = %+v, want usage 1 of 10 KiB", st)
	}
	big := bytes.Repeat([]byte("x"), 12<<10)
	ap := c.Append("INBOX", int64(len(big)), nil)
	ap.Write(big)
	ap.Close()
	if _, err := ap.Wait(); err == nil || !strings.Contains(err.Error(), "OVERQUOTA") {
		t.Errorf("APPEND over quota: %v, want NO [OVERQUOTA]", err)
	}
	// go-imap's client drops the connection after a refused literal; that the
	// server goes on is checked in TestTranscriptAppend.
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if x == a {
			return true
		}
	}
	return false
}

// TestClientIdle: a delivery reaches an idling client as EXISTS, and the new
// message is fetchable at once.
func TestClientIdle(t *testing.T) {
	e := newEnv(t)
	exists := make(chan uint32, 10)
	c := e.dial(t, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	uid := e.deliver(e.acc, "INBOX", testMessage(1, "while idle"))
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no EXISTS while idle")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "while idle" {
		t.Fatalf("FETCH after EXISTS: %v %v", msgs, err)
	}
	if !bytes.Equal([]byte(msgs[0].Envelope.Subject), []byte("while idle")) {
		t.Error("subject")
	}
}

// TestAccountsIsolated: another account's deliveries and mailboxes stay invisible.
func TestAccountsIsolated(t *testing.T) {
	e := newEnv(t)
	bob := e.addAccount("bob@example.org")
	e.deliver(bob, "INBOX", testMessage(1, "for bob"))
	e.deliver(bob, "Private", testMessage(2, "bob's folder"))
	c := e.dial(t, nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 0 {
		t.Fatalf("alice's INBOX = %+v, %v", sel, err)
	}
	if _, err := c.Select("Private", nil).Wait(); err == nil {
		t.Error("alice can select bob's mailbox")
	}
	if err := c.Noop().Wait(); err != nil || c.Mailbox() != nil && c.Mailbox().NumMessages != 0 {
		t.Errorf("NOOP: %v", err)
	}
}
