// Package store is coibox's only shared state: one SQLite database holding domains,
// accounts, mailboxes, messages with their bodies, METADATA and the outbound queue.
//
// Writes go through a single writer goroutine that commits many callers' changes in one
// transaction (group commit): the database runs in WAL mode with synchronous=FULL, so a
// commit is one fsync of the WAL, and a write is acknowledged only after that fsync.
// Concurrent deliveries therefore share fsyncs instead of queueing behind one each.
// Reads use a separate pool of query-only connections, which WAL lets proceed while the
// writer commits, so IMAP reads never wait on SMTP writes.
//
// Bodies live in the database, in their own table, not in files beside it. Measured by
// BenchmarkBodyPlacement (4 KB messages, 16 writers): blobs in the group-committed
// transaction need no extra fsync, while a file per message needs its own fsync plus one of
// its directory before the row may commit, which is the cost group commit exists to
// remove; a crash can also leave no orphan files. Bodies sit in a separate table so
// that scanning message rows (FETCH FLAGS, SEARCH on summaries) never reads body pages,
// and one body row is shared by every copy of a message (multi-recipient delivery, COPY).
//
// After each commit the store pokes the change feed of every account the batch touched.
// A session that wakes up reads the changes from the database, so it can only ever see
// a message once it is committed and fetchable by every connection.
package store
