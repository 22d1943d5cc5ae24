// Package coi holds coibox's chat rules: what a chatmail domain (chatmail spec) does
// differently from an ordinary one, for every protocol, in one place.
//
// Chat is wired by cmd into the delivery pipeline (RcptCheck, SubmitCheck, Check),
// into imapd (Authenticate, Capabilities, the METADATA hook) and into the HTTP server;
// no protocol package re-implements a rule. Subpackages hold concerns big enough for
// their own: e2ee (what counts as encrypted), profile (a domain's settings), push,
// turn, onboard (/new), mxdeliv, retention, and for COI clients coiext (the
// Chat-Over-IMAP extension) and webpush.
//
// Invariants:
//   - A domain's profile is read from the store at each use (one indexed row), so an
//     admin command beside a running server takes effect at the next message or login;
//     nothing about a domain is cached by id or name.
//   - An account made on first login is made by store.CreateAccount in one write;
//     concurrent first logins of one address make it once and all succeed (§3).
//   - Every refusal that a chatmail peer or client matches by text is built here, with
//     the spec's exact code and text.
//   - Notifications (Delta Chat push, WebPush) start only after the delivery's commit
//     (Stored) and never delay the reply: jobs are queued, sent by their own workers.
package coi
