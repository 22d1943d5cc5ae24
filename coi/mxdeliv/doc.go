// Package mxdeliv is chatmail's HTTPS federation (spec/chatmail.md §11): the POST
// /mxdeliv handler that feeds the delivery pipeline, and the client the queue sends with.
//
// # Receiving
//
// NewHandler runs a request through the same deliver.Pipeline as port 25 (Kind
// deliver.MX, Listener "mxdeliv", which the chat rules key the aligned-DKIM origin
// check on). X-MAIL-FROM is the envelope sender (absent: the null sender); every
// X-MAIL-TO header, split on commas, names recipients. Answers, with the SMTP reply
// line as a text/plain body:
//
//	200  250 OK                               delivered to every recipient
//	400  <the pipeline's reply line>          any refusal, of a recipient or the message
//	413  552 Message exceeds maximum size     body over Options.MaxBytes
//	405  Method Not Allowed                   not POST
//	500  451 4.3.0 ...                        internal failure; the sender may retry
//
// # Sending
//
// Client.Deliver POSTs a signed message to https://<mx-host>/mxdeliv and reports
// whether any 2xx took it; the caller falls back to SMTP on the same host otherwise.
// The client keeps the no-mxdeliv cache of §11.2: Skip says a host is not worth an
// HTTPS attempt now, MarkSMTP records a successful SMTP fallback (30 min), hosts that
// refuse TCP or answer 404/405 are recorded by Deliver itself (24 h), and Forget
// clears a host after an SMTP connection or TLS error.
//
// # Invariants
//
//   - All or nothing: the handler adds every recipient before it reads the body and
//     delivers only when all were accepted, so a refused request stored nothing. A
//     mailbox filling up between the recipient check and the commit is the one
//     exception (deliver.Result.Failed): the others got the message, and the answer
//     is 200, since a refusal would make the sender resend to all of them over SMTP.
//   - Bounded work per request: at most MaxRecipients X-MAIL-TO values are parsed
//     (the rest of the headers is bounded by net/http's MaxHeaderBytes), and the body
//     is read only up to MaxBytes; the Content-Length is checked before anything.
//   - The client never speaks plain HTTP and never follows a redirect (one could
//     point at http:// or another host); TLS is verified unless the caller passes its
//     own http.Client.
//   - The no-mxdeliv cache holds at most Options.CacheSize hosts, and an entry is
//     never shortened by a later, shorter one (a host refusing TCP stays cached 24 h
//     even after an SMTP success).
package mxdeliv
