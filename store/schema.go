package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
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
	// 2: row ids that are never reused (issue 7). SQLite gives an INTEGER PRIMARY KEY
	// without AUTOINCREMENT the highest id plus one, so after the newest mailbox (or
	// account, domain, queue recipient) was deleted the next one got its id, and
	// whatever was keyed by that id in memory (the IMAP summary cache, sessions,
	// in-flight queue deliveries) described the new row with the old one's data.
	// AUTOINCREMENT makes each id unique for the life of the database. SQLite cannot
	// add it to a table, so each table is rebuilt (the recipe of the ALTER TABLE
	// documentation, section 7: new table, copy, drop, rename) with foreign keys off;
	// the sequences start above every id still named anywhere, so an id that was
	// freed before this migration is not handed out again either. messages and bodies
	// keep plain row ids: their ids never leave the store and no cache is keyed by them.
	`
CREATE TABLE domains_new (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	name       TEXT NOT NULL UNIQUE,
	chatmail   INTEGER NOT NULL DEFAULT 0,
	created    INTEGER NOT NULL
);
INSERT INTO domains_new SELECT id, name, chatmail, created FROM domains;
DROP TABLE domains;
ALTER TABLE domains_new RENAME TO domains;

CREATE TABLE accounts_new (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	address       TEXT NOT NULL UNIQUE,
	domain_id     INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
	password_hash TEXT NOT NULL,
	quota_bytes   INTEGER NOT NULL DEFAULT -1,
	quota_msgs    INTEGER NOT NULL DEFAULT 0,
	used_bytes    INTEGER NOT NULL DEFAULT 0,
	used_msgs     INTEGER NOT NULL DEFAULT 0,
	enforce_e2ee_incoming INTEGER NOT NULL DEFAULT 0,
	coi_filing    INTEGER NOT NULL DEFAULT 0,
	last_login_day INTEGER NOT NULL DEFAULT 0,
	uidvalidity_last INTEGER NOT NULL DEFAULT 0,
	created       INTEGER NOT NULL
);
INSERT INTO accounts_new SELECT id, address, domain_id, password_hash, quota_bytes, quota_msgs, used_bytes, used_msgs,
	enforce_e2ee_incoming, coi_filing, last_login_day, uidvalidity_last, created FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;

CREATE TABLE mailboxes_new (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO mailboxes_new SELECT id, account_id, name, special_use, subscribed, uidvalidity, uidnext, highestmodseq,
	msg_count, msg_unseen, msg_deleted, msg_size FROM mailboxes;
DROP TABLE mailboxes;
ALTER TABLE mailboxes_new RENAME TO mailboxes;

CREATE TABLE queue_rcpts_new (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	queue_id     INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
	rcpt         TEXT NOT NULL,
	domain       TEXT NOT NULL,
	state        TEXT NOT NULL DEFAULT 'pending',
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	delay_notified INTEGER NOT NULL DEFAULT 0
);
INSERT INTO queue_rcpts_new SELECT id, queue_id, rcpt, domain, state, attempts, next_attempt, last_error, delay_notified FROM queue_rcpts;
DROP TABLE queue_rcpts;
ALTER TABLE queue_rcpts_new RENAME TO queue_rcpts;
CREATE INDEX queue_rcpts_due ON queue_rcpts (state, next_attempt);
CREATE INDEX queue_rcpts_queue ON queue_rcpts (queue_id, state);

-- Every id still named by another row counts as used. (sqlite_sequence has no key:
-- delete, then insert.)
DELETE FROM sqlite_sequence WHERE name IN ('domains', 'accounts', 'mailboxes', 'queue_rcpts');
INSERT INTO sqlite_sequence (name, seq) VALUES
	('domains', (SELECT max(coalesce((SELECT max(id) FROM domains), 0), coalesce((SELECT max(domain_id) FROM accounts), 0)))),
	('accounts', (SELECT max(coalesce((SELECT max(id) FROM accounts), 0), coalesce((SELECT max(account_id) FROM mailboxes), 0),
		coalesce((SELECT max(account_id) FROM metadata), 0), coalesce((SELECT max(account_id) FROM queue), 0)))),
	('mailboxes', (SELECT max(coalesce((SELECT max(id) FROM mailboxes), 0), coalesce((SELECT max(mailbox_id) FROM messages), 0),
		coalesce((SELECT max(mailbox_id) FROM expunged), 0), coalesce((SELECT max(mailbox_id) FROM metadata), 0)))),
	('queue_rcpts', coalesce((SELECT max(id) FROM queue_rcpts), 0));
`,
	// 3: chat. A domain's profile (package coi/profile owns its text; '' is the
	// defaults for its chatmail flag), and Delta Chat device tokens (chatmail spec §9).
	`
ALTER TABLE domains ADD COLUMN profile TEXT NOT NULL DEFAULT '';
CREATE TABLE push_tokens (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	token      TEXT NOT NULL,
	last_set   INTEGER NOT NULL, -- unix seconds
	PRIMARY KEY (account_id, token)
) WITHOUT ROWID;
`,
	// 4: the push notifier's job queue (chatmail spec §9), persisted so that jobs
	// survive a restart. Ids are AUTOINCREMENT: the notifier keys jobs in flight by id,
	// and a job deleted (token gone) and made again for the same token must not be
	// mistaken for the old one. At most one job per token (UNIQUE); the foreign key
	// makes a job exist only while its token does, so deleting a token (410, expiry,
	// eviction, the account's deletion) deletes its job in the same transaction.
	`
CREATE TABLE push_jobs (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id    INTEGER NOT NULL,
	token         TEXT NOT NULL,
	triggered     INTEGER NOT NULL,           -- unix seconds of the latest delivery folded in
	triggers      INTEGER NOT NULL DEFAULT 1, -- deliveries folded in; tells a finished attempt of a later one
	attempts      INTEGER NOT NULL DEFAULT 0, -- failed attempts since it was (re)armed
	first_attempt INTEGER NOT NULL DEFAULT 0, -- unix seconds; 0: no attempt has failed yet
	next_attempt  INTEGER NOT NULL,           -- unix seconds
	UNIQUE (account_id, token),
	FOREIGN KEY (account_id, token) REFERENCES push_tokens (account_id, token) ON DELETE CASCADE
);
CREATE INDEX push_jobs_due ON push_jobs (next_attempt);
`,
	// 5: deleting a message looks for other messages sharing its body (refcounts) and
	// the queue for entries holding it. Without these indexes each such lookup scans
	// the table: 100 expunges among 16,000 messages held the writer for 42 ms, 4 ms
	// with them (retention's measurement).
	`
CREATE INDEX messages_body ON messages (body_id);
CREATE INDEX queue_body ON queue (body_id);
`,
	// 6: the web admin: its one password, its sessions (by a hash of the cookie, so a
	// copy of the database opens none), and the audit log of what was done there.
	`
CREATE TABLE web_admin (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	pw_hash  TEXT NOT NULL,
	changed  INTEGER NOT NULL
);
CREATE TABLE web_sessions (
	token_hash BLOB PRIMARY KEY,
	csrf       TEXT NOT NULL,
	created    INTEGER NOT NULL,
	seen       INTEGER NOT NULL
);
CREATE TABLE audit (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	at      INTEGER NOT NULL,
	actor   TEXT NOT NULL,
	remote  TEXT NOT NULL,
	action  TEXT NOT NULL,
	detail  TEXT NOT NULL
);
`,
}

// rebuilds are the migrations (by number) that rebuild tables other tables refer to;
// they run with foreign keys off, as SQLite requires for dropping such a table
// without cascading, and check every reference before they commit.
var rebuilds = map[int]bool{2: true}

// ErrSchemaNewer is returned by Open for a database written by a newer coibox: an
// older binary must not guess at tables it does not know.
var ErrSchemaNewer = errors.New("the database was written by a newer coibox")

// SchemaVersion is the schema version this coibox writes.
func SchemaVersion() int { return len(migrations) }

// migrate brings the database to SchemaVersion. An existing database is first copied
// to dir/coibox-schema-v<old>-<time>.db (VACUUM INTO, a consistent snapshot), so that
// an upgrade can be undone by putting that file back under an older binary.
func migrate(ctx context.Context, db *sql.DB, dir string, now time.Time, log *slog.Logger) error {
	// One connection for the whole run: PRAGMA foreign_keys is per connection.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("open migration connection: %w", err)
	}
	defer conn.Close()
	var version int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("open %s: %w: its schema version is %d, this coibox knows up to %d; run the newer coibox again, or restore a backup made before the upgrade",
			filepath.Join(dir, DBFile), ErrSchemaNewer, version, len(migrations))
	}
	if version > 0 && version < len(migrations) {
		backup := filepath.Join(dir, fmt.Sprintf("coibox-schema-v%d-%s.db", version, now.UTC().Format("20060102T150405.000Z")))
		if _, err := conn.ExecContext(ctx, "VACUUM INTO ?", backup); err != nil {
			return fmt.Errorf("back up before migrating from schema version %d: %w", version, err)
		}
		log.Info("store: backed up the database before migrating it", "path", backup, "from", version, "to", len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if err := applyMigration(ctx, conn, i+1, migrations[i]); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, n int, script string) error {
	if rebuilds[n] {
		// Cannot change inside a transaction; SQLite ignores it there.
		if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
			return fmt.Errorf("prepare migration %d: %w", n, err)
		}
		defer func() { _, _ = conn.ExecContext(context.Background(), "PRAGMA foreign_keys = ON") }()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin migration %d: %w", n, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, script); err != nil {
		return fmt.Errorf("apply migration %d: %w", n, err)
	}
	if rebuilds[n] {
		rows, err := tx.QueryContext(ctx, "PRAGMA foreign_key_check")
		if err != nil {
			return fmt.Errorf("check migration %d: %w", n, err)
		}
		bad := rows.Next()
		rows.Close()
		if bad {
			return fmt.Errorf("check migration %d: a row refers to one that does not exist (run coibox verify on a backup)", n)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", n)); err != nil {
		return fmt.Errorf("record migration %d: %w", n, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migration %d: %w", n, err)
	}
	return nil
}
