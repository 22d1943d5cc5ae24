package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWebAdminState(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	s, err := Open(t.Context(), t.TempDir(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if ok, err := s.HasAdmin(ctx); ok || err != nil {
		t.Fatalf("HasAdmin before setup: %v %v", ok, err)
	}
	if _, err := s.CheckAdminPassword(ctx, "x"); !errors.Is(err, ErrNoAdmin) {
		t.Fatalf("check before setup: %v", err)
	}
	hash, _ := HashPassword("correct horse battery")
	if err := s.SetAdminPassword(ctx, hash); err != nil {
		t.Fatal(err)
	}
	for pw, want := range map[string]bool{"correct horse battery": true, "wrong": false} {
		if ok, err := s.CheckAdminPassword(ctx, pw); ok != want || err != nil {
			t.Errorf("check %q: %v %v", pw, ok, err)
		}
	}

	if err := s.CreateWebSession(ctx, "cookie-1", "csrf-1"); err != nil {
		t.Fatal(err)
	}
	ws, err := s.WebSessionFor(ctx, "cookie-1")
	if err != nil || ws.CSRF != "csrf-1" || !ws.Created.Equal(now) {
		t.Fatalf("session: %+v %v", ws, err)
	}
	if _, err := s.WebSessionFor(ctx, "cookie-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	now = now.Add(10 * time.Minute)
	if err := s.TouchWebSession(ctx, "cookie-1"); err != nil {
		t.Fatal(err)
	}
	if ws, _ := s.WebSessionFor(ctx, "cookie-1"); !ws.Seen.Equal(now) {
		t.Errorf("seen %v, want %v", ws.Seen, now)
	}
	// Idle expiry: seen before the cut.
	if err := s.ExpireWebSessions(ctx, now.Add(-time.Hour), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WebSessionFor(ctx, "cookie-1"); err != nil {
		t.Errorf("a session seen now expired: %v", err)
	}
	if err := s.ExpireWebSessions(ctx, now.Add(-time.Hour), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WebSessionFor(ctx, "cookie-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an idle session survived: %v", err)
	}
	// A new password ends every session.
	_ = s.CreateWebSession(ctx, "cookie-3", "c")
	if err := s.SetAdminPassword(ctx, hash); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WebSessionFor(ctx, "cookie-3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a session survived a password change: %v", err)
	}

	for _, a := range []string{"setup", "login", "logout"} {
		if err := s.Audit(ctx, AuditEntry{Actor: "admin", Remote: "192.0.2.1", Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	log, err := s.AuditLog(ctx, 2)
	if err != nil || len(log) != 2 || log[0].Action != "logout" || log[1].Action != "login" || log[0].Remote != "192.0.2.1" {
		t.Errorf("audit log %+v %v", log, err)
	}
}

func TestAccountsPage(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	for _, d := range []string{"example.org", "example.net"} {
		if _, err := s.AddDomain(ctx, d, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"alice@example.org", "bob@example.org", "a_b@example.org", "axb@example.org", "carol@example.net"} {
		if _, err := s.AddAccount(ctx, a, "pw-pw-pw-pw"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		search        string
		offset, limit int
		want          []string
		total         int
	}{
		{"", 0, 2, []string{"a_b@example.org", "alice@example.org"}, 5},
		{"", 4, 2, []string{"carol@example.net"}, 5},
		{"EXAMPLE.ORG", 0, 10, []string{"a_b@example.org", "alice@example.org", "axb@example.org", "bob@example.org"}, 4},
		{"a_b", 0, 10, []string{"a_b@example.org"}, 1}, // "_" is no wildcard
		{"%", 0, 10, nil, 0},
	} {
		page, total, err := s.AccountsPage(ctx, tc.search, tc.offset, tc.limit)
		var got []string
		for _, a := range page {
			got = append(got, a.Address)
		}
		if err != nil || total != tc.total || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("AccountsPage(%q, %d, %d) = %v, %d, %v; want %v, %d", tc.search, tc.offset, tc.limit, got, total, err, tc.want, tc.total)
		}
	}
	counts, err := s.AccountCounts(ctx)
	org, _ := s.Domain(ctx, "example.org")
	net, _ := s.Domain(ctx, "example.net")
	if err != nil || counts[org.ID] != 4 || counts[net.ID] != 1 {
		t.Errorf("AccountCounts = %v, %v", counts, err)
	}
}
