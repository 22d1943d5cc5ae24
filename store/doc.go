// Package store is coibox's only shared state: one SQLite database holding domains,
// accounts, mailboxes, messages with their bodies, METADATA and the outbound queue.
//
// Writes go through a single writer goroutine that commits many callers' changes in one
// transaction (group commit). A syncer goroutine then fsyncs the WAL while the writer
// already runs the next batch, and only after that fsync are the callers answered, so
// a write is acknowledged only once it survives power loss, and concurrent deliveries
// share fsyncs instead of queueing behind one each (BenchmarkDeliver: 4 KB messages at
// 1, 16 and 64 writers).
// Reads use a separate pool of query-only connections, which WAL lets proceed while the
// writer commits, so IMAP reads never wait on SMTP writes.
//
// Bodies live in the database, in their own table, not in files beside it. Measured by
// BenchmarkBodyPlacement (4 KB messages, 16 writers, durable before the reply): 124 µs
// per message as blobs against 483 µs as files (633 against 1,015 µs in a busier run).
// A blob rides in the group-committed transaction and its fsync; a file needs an fsync
// of its own plus one of its directory before its row may commit, which is the cost
// group commit exists to remove, and a crash between the two leaves orphans. Bodies
// sit in a separate table so that scanning message rows (FETCH FLAGS, SEARCH on
// summaries) never reads body pages, and one body row is shared by every copy of a
// message (multi-recipient delivery, COPY, the queue).
//
// After each commit the store pokes the change feed of every account the batch touched.
// A session that wakes up reads the changes from the database, so it can only ever see
// a message once it is committed and fetchable by every connection.
//
// Row ids that leave the store are never reused: domains, accounts, mailboxes and
// queue recipients are AUTOINCREMENT tables (migration 2), so another package may key
// a cache or a map on them for the life of the process without ever mistaking a new
// row for a deleted one. Message and body ids stay internal. After a commit that
// deleted mailboxes or accounts, OnRemoved hooks hear of it before the change feed is
// poked, so caches free what they hold before any session wakes up.
//
// A write that fails because the disk is full (SQLITE_FULL, ENOSPC, EDQUOT) has
// committed nothing, like any failed write, and its error matches ErrStorageFull:
// protocols refuse for now (SMTP 452 4.3.1, IMAP NO [OVERQUOTA]) and the same write
// succeeds once space returns (TestDiskFull in cmd/coibox).
package store
