// Package push is Delta Chat push (spec/chatmail.md §9): the device-token rules behind
// METADATA /private/devicetoken, the trigger on delivery, and the notifier that POSTs tokens.
//
// Callers apply the domain's `push` switch (coi/profile) before calling in: this
// package assumes push is on for the account it is given.
//
// # Tokens
//
// Tokens.Set adds a token to the account's set or refreshes its time; it never
// replaces the others. A value over MaxTokenSize is ErrTooLarge, which imapd answers
// with NO [METADATA MAXSIZE 4096]. An account keeps MaxTokens, the ones set longest
// ago evicted. A token is valid until TokenLifetime after its last Set, and not at
// all while its time lies more than MaxClockSkew in the future (the clock went
// back); Get and Trigger delete the invalid tokens they come across.
//
// # Invariants
//
// What the notifier's correctness rests on, and why each holds:
//
//  1. A job is made only after the delivery that triggers it is committed and
//     durable: Trigger is called after store.Deliver returned. A device woken by
//     the notification must find the message on its next IMAP FETCH.
//  2. A job exists only while its token does: push_jobs refers to push_tokens with
//     ON DELETE CASCADE, so a token deleted for any reason (410, expiry, eviction,
//     the account's deletion) takes its job with it in the same transaction, and
//     no POST starts for a token deleted before its job was listed. A job already
//     in flight when its token went is sent once more; recording its outcome then
//     finds no row and changes nothing.
//  3. At most one job per token (UNIQUE (account_id, token)). A trigger finding one
//     folds into it (triggers + 1) instead of making a second (§9). The notifier
//     remembers the fold count it listed the job with and ends the job only if it
//     is unchanged; a delivery folded in while the POST was under way may have come
//     after the POST reached the device, so the job is armed again, due at once,
//     as a fresh job. No delivery committed after a POST was sent goes unnotified.
//     A fold into a job waiting for its retry needs nothing: the retry comes later.
//  4. An attempt's outcome (done, retry time, drop, token deleted) is committed
//     before the job leaves the in-flight set, and the dispatcher never hands out a
//     job in flight, nor one that left the set while its listing was being read
//     (that listing may predate the outcome); the wake-up the worker sends brings a
//     fresh listing. So no job is sent twice at once or from a stale row. Job ids
//     are AUTOINCREMENT and never reused, so a job made again for the same token
//     (after its token was deleted and set anew) is never taken for the old one.
//  5. A job is sent at least once before it ends (done, 410, or dropped under 6).
//     A crash, or the end of Run's context, between a POST and the commit of its
//     outcome leaves the job as it was, and it is sent again after the restart: a
//     duplicate only wakes a device twice, a lost notification leaves a message
//     unread.
//  6. The retry schedule lives in the row (attempts, first_attempt, next_attempt),
//     so a restart continues it rather than starting over: 8 s, 64 s, 512 s and
//     4096 s after successive failures, MaxAttempts in all, and a job due more than
//     MaxAge after its first attempt is dropped, not sent late.
//
// Tokens are secrets of the device (the proxy decrypts them to reach APNs or FCM):
// they appear in logs only as TokenID, a short hash prefix.
package push
