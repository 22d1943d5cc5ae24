package store

import (
	"errors"
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
