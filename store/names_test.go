package store

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCheckDomainName(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
		err      string // part of the refusal
	}{
		{"example.org", "example.org", ""},
		{"Mail.Example.ORG.", "mail.example.org", ""},
		{"localhost", "localhost", ""},
		{"bücher.example", "xn--bcher-kva.example", ""},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", ""},
		{"_chat.example", "_chat.example", ""},
		{"_lan.bücher.example", "_lan.xn--bcher-kva.example", ""},
		{strings.Repeat("a", 63) + ".example", strings.Repeat("a", 63) + ".example", ""},
		{"127.0.0.1", "", "is an IP address"},
		{"[192.0.2.1]", "", "is an IP address"},
		{"2001:db8::1", "", "is an IP address"},
		{"a", "", "single label"},
		{"exa_mple.org", "", `"_" may only start the first label`},
		{"a._b.example", "", `"_" may only start the first label`},
		{"__x.example", "", `"_" may only start the first label`},
		{"_.example", "", `"_" must be followed by a label`},
		{strings.Repeat("a", 64) + ".example", "", "longer than 63 characters"},
		{strings.Repeat(strings.Repeat("a", 60)+".", 5) + "example", "", "longer than 253 characters"},
		{"bad..domain", "", "empty label"},
		{".example.org", "", "empty label"},
		{"-a.example", "", "starts or ends with a hyphen"},
		{"a b.example", "", "only letters, digits and hyphens"},
		{"a@b.example", "", "only letters, digits and hyphens"},
		{"example.123", "", "last label is all digits"},
		{"", "", "empty"},
		{"bad\xff.example", "", "not valid UTF-8"},
	}
	for _, tc := range tests {
		got, err := CheckDomainName(tc.in)
		switch {
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("CheckDomainName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("CheckDomainName(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.err)
		}
	}
}

func TestCheckLocalPart(t *testing.T) {
	tests := []struct {
		in  string
		err string // "" means accepted
	}{
		{"alice", ""},
		{"alice.smith+tag", ""},
		{"o'brien_x-y=z", ""},
		{"jörg", ""},
		{strings.Repeat("a", 64), ""},
		{strings.Repeat("a", 65), "longer than 64 octets"},
		{"", "empty"},
		{".alice", "dot at its start"},
		{"alice.", "dot at its start or end"},
		{"al..ice", "two in a row"},
		{"al ice", "contains"},
		{"al\x00ice", "contains"},
		{"al\tice", "contains"},
		{"a\"b", "contains"},
		{"a<b", "contains"},
		{"a\xffb", "not valid UTF-8"},
	}
	for _, tc := range tests {
		err := CheckLocalPart(tc.in)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("CheckLocalPart(%q) = %v, want %q", tc.in, err, tc.err)
		}
	}
}

// TestAdminInputRefused: the store refuses bad names before writing anything.
func TestAdminInputRefused(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for _, name := range []string{"127.0.0.1", "a", "exa_mple.org", strings.Repeat("x", 64) + ".example", "bad..domain"} {
		if _, err := s.AddDomain(ctx, name, false); err == nil {
			t.Errorf("AddDomain(%q) accepted", name)
		}
	}
	d, err := s.AddDomain(ctx, "Bücher.Example", false)
	if err != nil || d.Name != "xn--bcher-kva.example" {
		t.Fatalf("AddDomain of an IDN: %+v, %v", d, err)
	}
	if _, err := s.AddDomain(ctx, "xn--bcher-kva.example", false); !errors.Is(err, ErrExists) {
		t.Errorf("the A-label form of an added IDN: %v, want ErrExists", err)
	}
	doms, _ := s.Domains(ctx)
	if len(doms) != 1 {
		t.Errorf("domains after refusals: %+v", doms)
	}
	for _, addr := range []string{"a\xffb@xn--bcher-kva.example", "a b@xn--bcher-kva.example", ".x@xn--bcher-kva.example", strings.Repeat("a", 65) + "@xn--bcher-kva.example", "x@bad..example"} {
		if _, err := s.AddAccount(ctx, addr, "a-long-password"); err == nil {
			t.Errorf("AddAccount(%q) accepted", addr)
		}
		if _, err := s.CreateAccount(ctx, NewAccount{Address: addr, Password: "a-long-password"}); err == nil {
			t.Errorf("CreateAccount(%q) accepted", addr)
		}
	}
	if a, err := s.AddAccount(ctx, "Jörg@bücher.example", "a-long-password"); err != nil || a.Address != "jörg@xn--bcher-kva.example" {
		t.Errorf("AddAccount with an IDN domain: %+v, %v", a, err)
	}
	for _, tc := range []struct{ addr, dest string }{
		{"a b@xn--bcher-kva.example", "x@remote.example"},
		{"@bad_domain.example", "x@remote.example"},
		{"ok@xn--bcher-kva.example", "x y@remote.example"},
		{"ok@xn--bcher-kva.example", "x@127.0.0.1"},
	} {
		if err := s.AddAlias(ctx, tc.addr, tc.dest); err == nil {
			t.Errorf("AddAlias(%q, %q) accepted", tc.addr, tc.dest)
		}
	}
	if err := s.AddAlias(ctx, "@bücher.example", "jörg@xn--bcher-kva.example"); err != nil {
		t.Errorf("catch-all for an IDN: %v", err)
	}
}

// TestVerifyNamesAccounts: every problem verify reports names the account it is in.
func TestVerifyNamesAccounts(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	accs := setup(t, s, "alice@example.org", "bob@example.org")
	inbox := func(a *Account) int64 {
		mb, err := s.Mailbox(ctx, a.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		return mb.ID
	}
	if _, _, err := s.Deliver(ctx, &Delivery{Body: []byte("Subject: x\r\n\r\nhi\r\n"),
		Targets: []Target{{AccountID: accs[0].ID}, {AccountID: accs[1].ID}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, []byte("Subject: out\r\n\r\nhi\r\n"), &Outbound{Sender: "alice@example.org", Recipients: []string{"x@remote.example"}, AccountID: accs[0].ID}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"UPDATE mailboxes SET msg_count = 5 WHERE id = " + itoa(inbox(accs[0])),
		"UPDATE messages SET size = 3, modseq = 999999 WHERE mailbox_id = " + itoa(inbox(accs[1])),
		"UPDATE bodies SET refcount = 9 WHERE id = (SELECT min(id) FROM bodies)",
		"DELETE FROM queue_rcpts",
	} {
		if _, err := s.wdb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	probs, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs {
		if p.Account == "" {
			t.Errorf("problem without an account: %s", p)
		}
		got = append(got, p.What+" | "+p.Account)
	}
	want := []string{
		"message size | bob@example.org",
		"body refcount | alice@example.org, bob@example.org",
		"mailbox counters | alice@example.org",
		"mailbox counters | bob@example.org",
		"account usage | alice@example.org",
		"modseq above highestmodseq | bob@example.org",
		"queue entry without recipients | alice@example.org",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
