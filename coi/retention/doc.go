// Package retention is chatmail retention and quota (spec/chatmail.md §10): the daily
// job that deletes idle accounts, old mail and large seen mail and trims mailboxes, and
// the immediate trim after a delivery takes an account over 75 % of its domain's size.
//
// What is deleted follows each domain's profile (coi/profile): delete_inactive_users_after,
// delete_mails_after, delete_large_after, and trim_mailbox with max_mailbox_size. A
// setting that is zero or off does nothing, so an ordinary domain, whose defaults are all
// off, is never touched; a domain's own settings decide, whatever its chatmail flag.
//
// # Invariants
//
//  1. Every message goes through the store's expunge path (store.ExpireMessages,
//     ExpireLargeSeen, TrimAccount): quota and mailbox counters, MODSEQ, the expunged
//     UIDs QRESYNC reports and body reference counts stay right, and IMAP sessions of
//     the account hear of it as of any EXPUNGE.
//  2. Trimming never deletes a message under MinAge (24 h) old, even when the account
//     stays over its quota; it deletes oldest first, across all folders, and stops as
//     soon as usage is at most TrimTo % of max_mailbox_size.
//  3. The writer is never held for long: each write deletes at most Options.Batch
//     messages, and the job waits for one to be durable before it asks for the next,
//     so deliveries queued meanwhile join the next group commit. An idle account is
//     emptied that way before store.DeleteAccount removes what is left and leaves the
//     tombstone that keeps its address from being given out again at once.
//  4. At most one trim per account runs at a time, whether started by a delivery or by
//     the daily job; a request arriving meanwhile makes the running trim look once
//     more when it is done, so usage that a delivery pushed up during a trim is not
//     left above 75 %.
//  5. An account counts as idle only when its whole last-login day (the store keeps
//     days) lies before the cut-off, so no account goes before it has been idle for
//     the full period; one that never logged in counts from its creation. An account
//     that logs in while it is being emptied is left alone.
package retention
