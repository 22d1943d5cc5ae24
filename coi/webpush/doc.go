// Package webpush is the server side of the IMAP WebPush extension (coi spec §8): the VAPID
// key, subscriptions kept as METADATA values, and encrypted notifications after delivery.
//
// The package knows no IMAP and no store. The caller (the METADATA hook) reads and writes
// the entries under EntryPrefix with the store's METADATA API and hands the values in:
// Subscribe and Validate return the value to store, Public the value to show, and the
// notifier reads an account's values through Options.Load and deletes one through
// Options.Remove. Errors of type *Error are what the client must see, as
// NO [Code] Text. The hook must own every name under EntryPrefix: a stored value is
// not the public form, and imapd must never serve one as it is.
//
// # Invariants
//
// What the package's correctness rests on, and why each holds:
//
//  1. Only validated subscriptions get notifications (§8.4): the notifier skips every
//     stored value whose validated flag is false, and the flag is set only by Validate
//     after the client proved it read the validation push.
//  2. A subscription never outlives its purpose by a stale decision: Options.Remove is
//     given the exact stored value the decision was made on and must delete the entry
//     only if it still holds that value. A 410 for an old endpoint therefore never
//     deletes a subscription the client has re-SET since, nor the pending sweep one the
//     client has validated since.
//  3. Notify never blocks and never fails the delivery (D9): it copies the few header
//     fields and the small body the payload may use, offers them to a bounded queue
//     and drops them (with a log line) when the queue is full. Workers are bounded
//     (Options.Workers) and the requests they make wait in a second bounded queue,
//     served first; a retry is a timer that offers the request again, so a slow or
//     dead endpoint holds one worker for at most one request timeout per attempt and
//     no worker ever sleeps.
//  4. No request reaches a non-public address unless its host[:port] is allow-listed
//     (D10): the address check runs in the dialer on the address actually connected
//     to, after name resolution, so a name that resolves differently at subscribe and
//     at send time (DNS rebinding) is still refused. Redirects are not followed.
//     Through an HTTPS proxy the proxy connects, so the connect-time check cannot run;
//     Subscribe still checks the addresses the name has, where it can resolve it.
//  5. The VAPID key never changes once made (§8.2): LoadKey creates the file only if it
//     does not exist, atomically (temporary file, fsync, hard link), so concurrent
//     starts and a crash mid-way agree on one key, and never replaces an existing one.
//  6. The validation string is secret: it lives only in the stored value, which the
//     hook never shows (Public leaves it out), and it is compared in constant time.
//
// Queued notifications, retry timers, the subscribe throttle and the count of
// consecutive refusals (§8.10) live in memory: a restart loses at most a few
// notifications and resets the counters, which only makes the server more lenient.
package webpush
