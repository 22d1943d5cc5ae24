package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order; PRAGMA user_version records how many ran. Never edit
// a released migration: append a new one.
var migrations = []string{
	// 1: the base schema.
	`
CREATE TABLE domains (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	chatmail   INTEGER NOT NULL DEFAULT 0,
	created    INTEGER NOT NULL
);
CREATE TABLE accounts (
	id            INTEGER PRIMARY KEY,
	address       TEXT NOT NULL UNIQUE,
	domain_id     INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
	password_hash TEXT NOT NULL,
	quota_bytes   INTEGER NOT NULL DEFAULT -1,  -- -1: the server default; 0: unlimited
	quota_msgs    INTEGER NOT NULL DEFAULT 0,   -- 0: unlimited
	used_bytes    INTEGER NOT NULL DEFAULT 0,
	used_msgs     INTEGER NOT NULL DEFAULT 0,
	enforce_e2ee_incoming INTEGER NOT NULL DEFAULT 0,
	coi_filing    INTEGER NOT NULL DEFAULT 0,
	last_login_day INTEGER NOT NULL DEFAULT 0,  -- days since the epoch: day granularity only
	uidvalidity_last INTEGER NOT NULL DEFAULT 0,
	created       INTEGER NOT NULL
);
CREATE TABLE tombstones (
	address TEXT PRIMARY KEY,
	deleted INTEGER NOT NULL
) WITHOUT ROWID;
-- An alias maps an address ("user@d", or "@d" for a domain catch-all) to destinations.
CREATE TABLE aliases (
	address     TEXT NOT NULL,
	destination TEXT NOT NULL,
	PRIMARY KEY (address, destination)
) WITHOUT ROWID;
CREATE TABLE mailboxes (
	id            INTEGER PRIMARY KEY,
	account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name          TEXT NOT NULL,
	special_use   TEXT NOT NULL DEFAULT '',
	subscribed    INTEGER NOT NULL DEFAULT 1,
	uidvalidity   INTEGER NOT NULL,
	uidnext       INTEGER NOT NULL DEFAULT 1,
	highestmodseq INTEGER NOT NULL DEFAULT 1,
	msg_count     INTEGER NOT NULL DEFAULT 0,
	msg_unseen    INTEGER NOT NULL DEFAULT 0,
	msg_deleted   INTEGER NOT NULL DEFAULT 0,
	msg_size      INTEGER NOT NULL DEFAULT 0,
	UNIQUE (account_id, name)
);
CREATE TABLE bodies (
	id       INTEGER PRIMARY KEY,
	refcount INTEGER NOT NULL,
	data     BLOB NOT NULL
);
CREATE TABLE messages (
	id            INTEGER PRIMARY KEY,
	mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid           INTEGER NOT NULL,
	modseq        INTEGER NOT NULL,
	flags         TEXT NOT NULL DEFAULT '',  -- space-separated, sorted; system flags and keywords
	internal_date INTEGER NOT NULL,          -- unix seconds
	size          INTEGER NOT NULL,
	body_id       INTEGER NOT NULL REFERENCES bodies(id),
	summary       BLOB,                      -- opaque, owned by the Summarize hook (imapd)
	UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE TABLE expunged (
	mailbox_id INTEGER NOT NULL,
	uid        INTEGER NOT NULL,
	modseq     INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
-- account_id 0 is the server; mailbox_id 0 is the "" (server/account) entry.
CREATE TABLE metadata (
	account_id INTEGER NOT NULL,
	mailbox_id INTEGER NOT NULL,
	name       TEXT NOT NULL,
	value      BLOB NOT NULL,
	PRIMARY KEY (account_id, mailbox_id, name)
) WITHOUT ROWID;
-- One outbound message; its recipients are rows of queue_rcpts.
CREATE TABLE queue (
	id        INTEGER PRIMARY KEY AUTOINCREMENT, -- ids name entries in "coibox queue": never reused
	sender    TEXT NOT NULL,        -- envelope sender; '' is the null sender (bounces)
	body_id   INTEGER NOT NULL REFERENCES bodies(id),
	created   INTEGER NOT NULL,
	requiretls INTEGER NOT NULL DEFAULT 0,
	smtputf8  INTEGER NOT NULL DEFAULT 0,
	eightbit  INTEGER NOT NULL DEFAULT 0,
	account_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE queue_rcpts (
	id           INTEGER PRIMARY KEY,
	queue_id     INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
	rcpt         TEXT NOT NULL,
	domain       TEXT NOT NULL,
	state        TEXT NOT NULL DEFAULT 'pending', -- pending, delivered, failed
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	delay_notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_rcpts_due ON queue_rcpts (state, next_attempt);
CREATE INDEX queue_rcpts_queue ON queue_rcpts (queue_id, state);
`,
}

func migrate(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this coibox (%d): upgrade coibox", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("apply migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("record migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit migration %d: %w", i+1, err)
		}
	}
	return nil
}
