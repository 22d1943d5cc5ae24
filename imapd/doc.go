// Package imapd is coibox's IMAP server (IMAP4rev1 and IMAP4rev2 with extensions):
// sessions, commands and IDLE, on top of the wire package (grammar) and the store (state).
//
// A session keeps only what a client's view needs: the UIDs of the selected mailbox in
// sequence order, their flags (interned) and the highest MODSEQ it has reported. The
// store pokes every session of an account after a change is committed and fsynced; the
// session then reads what changed (store.Changes) and reports it at the next point
// RFC 9051 allows: at once while IDLE; after every other command in full; after
// FETCH, STORE and SEARCH only new messages (EXISTS), and after their UID forms
// expunges too (§7.5.1), never another message's FETCH FLAGS (Delta Chat fails a
// FETCH that carries one); what such a limited update leaves waits for the next. Because a poke follows the commit, "* N EXISTS" always names a message
// that every connection can already fetch.
//
// Invariants:
//   - Anything in memory that outlives one session and is keyed by database ids (the
//     summary cache, the per-account session sets) keys on ids the store never reuses
//     (mailbox and account row ids, store schema migration 2). The summary cache
//     adds the account and UIDVALIDITY to its key, so even a reused id would miss
//     instead of describing one mailbox with another's messages (RFC 9051 §2.3.1.1:
//     a UID names one message only within one UIDVALIDITY of one mailbox).
//   - When the store deletes a mailbox or an account it tells the Server
//     (store.OnRemoved) after the commit and before the change feed's pokes: cached
//     summaries are freed, and every session of a deleted account is sent BYE. A
//     session whose selected mailbox was deleted sends BYE at its next update.
//   - A session learns of a change only after it is committed and fsynced; what a
//     FETCH or SEARCH answers comes from committed rows or from the cache of them.
package imapd
