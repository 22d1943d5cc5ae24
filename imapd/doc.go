// Package imapd is coibox's IMAP server (IMAP4rev1 and IMAP4rev2 with extensions):
// sessions, commands and IDLE, on top of the wire package (grammar) and the store (state).
//
// A session keeps only what a client's view needs: the UIDs of the selected mailbox in
// sequence order, their flags (interned) and the highest MODSEQ it has reported. The
// store pokes every session of an account after a change is committed and fsynced; the
// session then reads what changed (store.Changes) and reports it at the next point
// RFC 9051 allows: at once while IDLE, otherwise with the next command other than
// FETCH, STORE and SEARCH (Delta Chat fails a FETCH that carries another message's
// flag change). Because a poke follows the commit, "* N EXISTS" always names a message
// that every connection can already fetch.
package imapd
