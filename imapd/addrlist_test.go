package imapd

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// FuzzAddressList: any address field parses without a panic, and every group
// opened is closed.
func FuzzAddressList(f *testing.F) {
	for _, s := range []string{
		`team: a@b.example, "C" <c@d.example>;, solo@e.example`,
		`undisclosed-recipients:;`,
		`"a:b;c" <x@y.example>, (comment: ;) z@w.example`,
		`broken: <a@b`,
		`=?utf-8?q?Gr=C3=BCn?=: a@b.example;`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader([]byte("To: " + v + "\r\n\r\n"))))
		if err != nil {
			return
		}
		open := 0
		for _, a := range addressList(hdr, "To") {
			switch {
			case a.Host == "" && a.Mailbox != "":
				open++
			case a.Name == "" && a.Mailbox == "" && a.Host == "":
				open--
			}
			if open < 0 || open > 1 {
				t.Fatalf("groups unbalanced in %q", v)
			}
		}
		if open != 0 {
			t.Fatalf("group left open in %q", v)
		}
	})
}
