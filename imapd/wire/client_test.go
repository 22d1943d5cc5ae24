package wire

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// testMessage has a UTF-8 encoded-word subject, a text part and an
// attachment whose decoded bytes contain NUL (for BINARY's ~{n}).
var testMessage = strings.ReplaceAll(`Message-ID: <m1@example.org>
Date: Tue, 01 Sep 2026 10:00:00 +0200
From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>
To: bob@example.net, Team: carol@example.net;
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
Chat-Version: 1.0
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hall=C3=B6
--b1
Content-Type: application/octet-stream
Content-Disposition: attachment; filename=x.bin
Content-Transfer-Encoding: base64

AQIAAwQ=
--b1--
`, "\n", "\r\n")

var testCaps = []string{"IMAP4rev1", "LITERAL+", "ID", "METADATA", "CONDSTORE", "BINARY", "LIST-EXTENDED", "LIST-STATUS"}

// serveTest is a toy session on top of the wire package: just enough to
// let go-imap's client check that what we write parses, and that what it
// writes parses here.
func serveTest(t *testing.T, conn net.Conn) {
	defer conn.Close()
	ctx := context.Background()
	msg := []byte(testMessage)
	hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		t.Error(err)
		return
	}
	meta := map[string][]byte{"/shared/admin": []byte("mailto:admin@example.org")}
	r := NewReader(conn, Limits{})
	w := NewWriter(conn)
	r.Continue = func(context.Context, LiteralInfo) error {
		w.Continue("Ready for literal data")
		return w.Flush()
	}
	w.OK("*", CodeCapability(testCaps...), "coibox test ready")
	for w.Flush() == nil {
		cmd, err := r.ReadCommand(ctx)
		if e, ok := AsError(err); ok {
			w.WriteError(e)
			continue
		}
		if err != nil {
			return
		}
		if err := serveCommand(w, cmd, msg, hdr, meta); err != nil {
			e, _ := AsError(err)
			w.WriteError(e)
		}
		if cmd.Name == "LOGOUT" {
			w.Flush()
			return
		}
	}
}

func serveCommand(w *Writer, cmd *Command, msg []byte, hdr textproto.Header, meta map[string][]byte) error {
	switch cmd.Name {
	case "LOGIN":
		if _, _, err := cmd.Login(); err != nil {
			return err
		}
		w.OK(cmd.Tag, CodeCapability(testCaps...), "Logged in")
	case "SELECT":
		if _, err := cmd.Select(); err != nil {
			return err
		}
		w.FlagsResponse([]imap.Flag{imap.FlagSeen, imap.FlagDeleted})
		w.Exists(1)
		w.OK("*", CodeUIDValidity(7), "UIDs valid")
		w.OK("*", CodeUIDNext(2), "Predicted next UID")
		w.OK(cmd.Tag, CodeReadWrite, "Select completed")
	case "FETCH":
		fa, err := cmd.Fetch()
		if err != nil {
			return err
		}
		o := fa.Options
		w.FetchStart(1)
		if o.UID {
			w.FetchUID(1)
		}
		if o.Flags {
			w.FetchFlags([]imap.Flag{imap.FlagSeen, "$Chat"})
		}
		if o.RFC822Size {
			w.FetchRFC822Size(int64(len(msg)))
		}
		if o.InternalDate {
			w.FetchInternalDate(time.Date(2026, 9, 1, 8, 0, 1, 0, time.UTC))
		}
		if o.Envelope {
			w.FetchEnvelope(imapserver.ExtractEnvelope(hdr))
		}
		if o.BodyStructure != nil {
			w.FetchBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(msg)), o.BodyStructure.Extended)
		}
		if o.ModSeq {
			w.FetchModSeq(42)
		}
		for _, s := range fa.Sections {
			switch {
			case s.Body != nil:
				w.FetchSection(s.Name, s.Partial(), imapserver.ExtractBodySection(bytes.NewReader(msg), s.Body))
			case s.Binary != nil:
				w.FetchBinary(s.Name, s.Partial(), imapserver.ExtractBinarySection(bytes.NewReader(msg), s.Binary))
			case s.BinarySize != nil:
				w.FetchBinarySize(s.Name, imapserver.ExtractBinarySectionSize(bytes.NewReader(msg), s.BinarySize))
			}
		}
		w.FetchEnd()
		w.OK(cmd.Tag, "", "Fetch completed")
	case "GETMETADATA":
		ga, err := cmd.GetMetadata()
		if err != nil {
			return err
		}
		var entries []MetadataEntry
		for _, name := range ga.Entries {
			v, ok := meta[name]
			entries = append(entries, MetadataEntry{Name: name, Value: v, Nil: !ok})
		}
		w.Metadata(ga.Mailbox, entries)
		w.OK(cmd.Tag, "", "Getmetadata completed.")
	case "SETMETADATA":
		sa, err := cmd.SetMetadata()
		if err != nil {
			return err
		}
		for _, e := range sa.Entries {
			meta[e.Name] = e.Value
		}
		w.OK(cmd.Tag, "", "Setmetadata completed.")
	case "LIST":
		la, err := cmd.List()
		if err != nil {
			return err
		}
		for _, name := range []string{"INBOX", "Grüße/日本語"} {
			d := &imap.ListData{Delim: '/', Mailbox: name, Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}}
			if la.Options.ReturnStatus != nil {
				d.Status = &imap.StatusData{Mailbox: name, NumMessages: u32(1)}
			}
			w.List("LIST", d)
		}
		w.OK(cmd.Tag, "", "List completed")
	case "STATUS":
		sa, err := cmd.Status()
		if err != nil {
			return err
		}
		w.Status(&imap.StatusData{Mailbox: sa.Mailbox, NumMessages: u32(1), UIDNext: 2, UIDValidity: 7, HighestModSeq: 42, Size: i64(int64(len(msg)))})
		w.OK(cmd.Tag, "", "Status completed")
	case "LOGOUT":
		w.StatusResponse("*", BYE, "", "bye")
		w.OK(cmd.Tag, "", "Logout completed")
	default:
		w.BAD(cmd.Tag, "", "unknown command")
	}
	return nil
}

func TestGoIMAPClient(t *testing.T) {
	sconn, cconn := net.Pipe()
	go serveTest(t, sconn)
	c := imapclient.New(cconn, nil)
	defer c.Close()

	if err := c.Login("user", "pass word").Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 || sel.UIDValidity != 7 || sel.UIDNext != 2 {
		t.Fatalf("SELECT = %+v, %v", sel, err)
	}

	hdrSection := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID", "Chat-Version"}, Peek: true}
	whole := &imap.FetchItemBodySection{Peek: true}
	partial := &imap.FetchItemBodySection{Part: []int{1}, Partial: &imap.SectionPartial{Offset: 2, Size: 3}}
	bin := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{
		UID: true, Flags: true, RFC822Size: true, InternalDate: true, Envelope: true, ModSeq: true,
		BodyStructure:     &imap.FetchItemBodyStructure{Extended: true},
		BodySection:       []*imap.FetchItemBodySection{hdrSection, whole, partial},
		BinarySection:     []*imap.FetchItemBinarySection{bin},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH: %v, %d messages", err, len(msgs))
	}
	m := msgs[0]
	if m.UID != 1 || m.RFC822Size != int64(len(testMessage)) || m.ModSeq != 42 || !reflect.DeepEqual(m.Flags, []imap.Flag{imap.FlagSeen, "$Chat"}) {
		t.Errorf("FETCH items: %+v", m)
	}
	if !m.InternalDate.Equal(time.Date(2026, 9, 1, 8, 0, 1, 0, time.UTC)) {
		t.Errorf("INTERNALDATE = %v", m.InternalDate)
	}
	env := m.Envelope
	if env == nil || env.Subject != "Grüße" || env.MessageID != "m1@example.org" || len(env.From) != 1 || env.From[0].Name != "Jörg" ||
		len(env.To) != 2 || env.To[1].Mailbox != "carol" || !env.Date.Equal(time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("ENVELOPE = %s", dump(env))
	}
	want := imapserver.ExtractBodyStructure(strings.NewReader(testMessage))
	// Empty parameter lists go out as NIL and come back nil.
	want.Walk(func(_ []int, p imap.BodyStructure) bool {
		if sp, ok := p.(*imap.BodyStructureSinglePart); ok && len(sp.Params) == 0 {
			sp.Params = nil
		}
		return true
	})
	if !reflect.DeepEqual(m.BodyStructure, want) {
		t.Errorf("BODYSTRUCTURE =\n%s\nwant\n%s", dump(m.BodyStructure), dump(want))
	}
	if got := string(m.FindBodySection(hdrSection)); got != "Message-ID: <m1@example.org>\r\nChat-Version: 1.0\r\n\r\n" {
		t.Errorf("BODY[HEADER.FIELDS] = %q", got)
	}
	if got := string(m.FindBodySection(whole)); got != testMessage {
		t.Errorf("BODY[] = %q", got)
	}
	if got := string(m.FindBodySection(partial)); got != "ll=" {
		t.Errorf("BODY[1]<2.3> = %q", got)
	}
	if got := m.FindBinarySection(bin); !bytes.Equal(got, []byte{1, 2, 0, 3, 4}) {
		t.Errorf("BINARY[2] = %q", got)
	}
	if n, ok := m.FindBinarySectionSize([]int{2}); !ok || n != 5 {
		t.Errorf("BINARY.SIZE[2] = %d, %v", n, ok)
	}

	if err := c.SetMetadata("INBOX", map[string]*[]byte{"/private/devicetoken": ptr([]byte("line1\r\nline2"))}).Wait(); err != nil {
		t.Fatalf("SETMETADATA: %v", err)
	}
	md, err := c.GetMetadata("INBOX", []string{"/private/devicetoken", "/shared/missing"}, &imapclient.GetMetadataOptions{Depth: imapclient.GetMetadataDepthOne}).Wait()
	if err != nil || md.Entries["/private/devicetoken"] == nil || string(*md.Entries["/private/devicetoken"]) != "line1\r\nline2" || md.Entries["/shared/missing"] != nil {
		t.Errorf("GETMETADATA = %+v, %v", md, err)
	}

	list, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil || len(list) != 2 || list[1].Mailbox != "Grüße/日本語" || list[1].Status == nil || *list[1].Status.NumMessages != 1 {
		t.Errorf("LIST = %s, %v", dump(list), err)
	}
	st, err := c.Status("Grüße/日本語", &imap.StatusOptions{NumMessages: true, UIDNext: true, HighestModSeq: true, Size: true}).Wait()
	if err != nil || st.Mailbox != "Grüße/日本語" || st.HighestModSeq != 42 || *st.Size != int64(len(testMessage)) {
		t.Errorf("STATUS = %s, %v", dump(st), err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
