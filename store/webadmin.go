package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The web admin's state: its password (one admin, the server's operator), its
// sessions and the audit log. Sessions are stored by the SHA-256 of their cookie
// value, so the database (or a backup of it) cannot be used to take one over.

// ErrNoAdmin is returned by AdminPasswordHash before the first-run setup.
var ErrNoAdmin = errors.New("no web admin password is set")

// SetAdminPassword sets the web admin's password (as a hash from HashPassword) and
// ends every session, so that a changed password locks out whoever knew the old one.
func (s *Store) SetAdminPassword(ctx context.Context, hash string) error {
	now := s.now().Unix()
	err := s.write(ctx, func(t *Tx) error {
		if _, err := t.exec(`INSERT INTO web_admin (id, pw_hash, changed) VALUES (1, ?, ?)
			ON CONFLICT (id) DO UPDATE SET pw_hash = excluded.pw_hash, changed = excluded.changed`, hash, now); err != nil {
			return err
		}
		_, err := t.exec("DELETE FROM web_sessions")
		return err
	})
	if err != nil {
		return fmt.Errorf("set web admin password: %w", err)
	}
	return nil
}

// CheckAdminPassword reports whether password is the web admin's; ErrNoAdmin before
// one is set.
func (s *Store) CheckAdminPassword(ctx context.Context, password string) (bool, error) {
	var hash string
	err := s.rdb.QueryRowContext(ctx, "SELECT pw_hash FROM web_admin WHERE id = 1").Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNoAdmin
	}
	if err != nil {
		return false, fmt.Errorf("read web admin password: %w", err)
	}
	return checkPassword(hash, password)
}

// HasAdmin reports whether the first-run setup has set a password.
func (s *Store) HasAdmin(ctx context.Context) (bool, error) {
	var n int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM web_admin").Scan(&n); err != nil {
		return false, fmt.Errorf("read web admin: %w", err)
	}
	return n > 0, nil
}

// WebSession is a logged-in admin's session.
type WebSession struct {
	CSRF          string
	Created, Seen time.Time
}

func sessionKey(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// CreateWebSession stores a new session for the cookie value token.
func (s *Store) CreateWebSession(ctx context.Context, token, csrf string) error {
	now := s.now().Unix()
	err := s.write(ctx, func(t *Tx) error {
		_, err := t.exec("INSERT INTO web_sessions (token_hash, csrf, created, seen) VALUES (?, ?, ?, ?)", sessionKey(token), csrf, now, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("create web session: %w", err)
	}
	return nil
}

// WebSessionFor returns the session of cookie value token, ErrNotFound if there is
// none.
func (s *Store) WebSessionFor(ctx context.Context, token string) (*WebSession, error) {
	var ws WebSession
	var created, seen int64
	err := s.rdb.QueryRowContext(ctx, "SELECT csrf, created, seen FROM web_sessions WHERE token_hash = ?", sessionKey(token)).Scan(&ws.CSRF, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read web session: %w", err)
	}
	ws.Created, ws.Seen = time.Unix(created, 0), time.Unix(seen, 0)
	return &ws, nil
}

// TouchWebSession records use of the session now, for its idle expiry.
func (s *Store) TouchWebSession(ctx context.Context, token string) error {
	now := s.now().Unix()
	return s.write(ctx, func(t *Tx) error {
		return t.execOne("UPDATE web_sessions SET seen = ? WHERE token_hash = ?", now, sessionKey(token))
	})
}

// DeleteWebSession ends the session of cookie value token (logout, expiry).
func (s *Store) DeleteWebSession(ctx context.Context, token string) error {
	return s.write(ctx, func(t *Tx) error {
		_, err := t.exec("DELETE FROM web_sessions WHERE token_hash = ?", sessionKey(token))
		return err
	})
}

// ExpireWebSessions deletes sessions created before created or idle since seen.
func (s *Store) ExpireWebSessions(ctx context.Context, created, seen time.Time) error {
	return s.write(ctx, func(t *Tx) error {
		_, err := t.exec("DELETE FROM web_sessions WHERE created < ? OR seen < ?", created.Unix(), seen.Unix())
		return err
	})
}

// AuditEntry is one line of the admin audit log.
type AuditEntry struct {
	At                            time.Time
	Actor, Remote, Action, Detail string
}

// Audit appends an entry to the audit log.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	err := s.write(ctx, func(t *Tx) error {
		_, err := t.exec("INSERT INTO audit (at, actor, remote, action, detail) VALUES (?, ?, ?, ?, ?)",
			e.At.UnixMilli(), e.Actor, e.Remote, e.Action, e.Detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// AuditLog returns the newest limit entries, newest first.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT at, actor, remote, action, detail FROM audit ORDER BY id DESC LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&at, &e.Actor, &e.Remote, &e.Action, &e.Detail); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.At = time.UnixMilli(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
