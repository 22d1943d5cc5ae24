// Package coiext is the Chat-Over-IMAP server extension (coi spec): its METADATA
// configuration entries, the COI folders, chat classification and filing at delivery.
//
// Invariants:
//   - A client that never sets COI metadata sees exactly the mailbox it would see on a
//     server without COI: nothing is tagged or filed unless the account's enabled entry
//     is "yes" at delivery (§7.1), and filing out of INBOX needs the account's opt-in
//     (coi_filing, §7.3, D1), since Delta Chat watches INBOX only.
//   - The entries are the account's own METADATA rows (mailbox 0), read at each use:
//     a change applies to the next delivery at once (D5); nothing is cached.
//   - The enabled entry and the <root>/Chats folder stay in step both ways: enabling
//     makes the folders before the tagged OK; deleting Chats, or renaming it (or an
//     ancestor) into Trash, clears the entry first; creating Chats sets it (§5).
package coiext
