// Package queue delivers outbound mail: it takes due recipients from the store's queue,
// finds their MX hosts, sends over (MTA-STS-checked) TLS, retries and bounces with DSNs.
//
// # Scheduling
//
// Run asks the store which destination domains have recipients due and hands each
// domain's messages to workers: at most Options.Concurrency at once and
// Options.ConnsPerDomain per domain, so a backlog for one domain never holds up the
// others. A worker delivers one message's recipients at a domain in one SMTP
// transaction and keeps its connection for the next message to the same domain. Kick
// wakes Run at once (cmd calls it after enqueueing); otherwise Run sleeps until the
// next recipient is due.
//
// # Outcomes
//
// A 2xx after the final dot marks the recipient delivered. A 5xx, a null MX, a domain
// that does not exist, or REQUIRETLS that no host can honour fails it for good; a 4xx
// or a connection problem retries after MinRetry, doubling up to MaxRetry, ±10%. After
// Lifetime (per sender domain through LifetimeFor) the last temporary failure becomes
// permanent (5.4.7). Failures and, once after DelayNotice, delays are reported to the
// envelope sender by a DSN (package dsn) that is queued in the same store transaction
// as the failure, unless LocalDeliver takes it. Mail from the null sender is never
// bounced.
//
// # TLS
//
// STARTTLS is used whenever offered. Without a policy an invalid certificate does not
// stop delivery (opportunistic TLS; the connection is logged as unverified) and a
// failed handshake is retried in plain text. A domain's MTA-STS policy (package
// mtasts) in enforce mode restricts delivery to MX hosts it names, over TLS with a
// certificate valid for the MX name; anything less is a temporary failure naming the
// reason. REQUIRETLS messages need a verified certificate and a peer announcing
// REQUIRETLS (a DANE-verified one counts).
//
// DANE (RFC 7672) takes precedence over MTA-STS. When the Resolver can say which
// answers were DNSSEC-validated (*dnsx.Resolver can) and the MX RRset (for the
// implicit MX, the domain's addresses), the MX host's addresses and its TLSA records
// at _<port>._tcp.<host> all validate, STARTTLS is mandatory and the certificate must
// match a DANE-EE record (names and dates ignored) or chain, with the MX host or the
// domain as name, to a certificate matching a DANE-TA record. PKIX usages and
// malformed records are ignored; with validated records of which none is usable,
// STARTTLS is still mandatory but not authenticated (RFC 7672 2.2), and MTA-STS
// applies as without DANE. A mismatch, a missing STARTTLS or a failed TLSA lookup is a
// temporary failure naming the reason. Trusting the AD bit assumes a validating
// resolver on a trusted path.
//
// # HTTPS federation
//
// With Options.Federation (chatmail's /mxdeliv, spec/chatmail.md §11.2), each MX host
// in preference order is first offered the message over HTTPS, unless the
// federation's cache skips it; a 2xx delivers every recipient of the job, anything
// else falls back to SMTP on the same host. The same signed bytes go either way. A
// successful fallback is reported (MarkSMTP) so that the host is left to SMTP for a
// while, and a host SMTP cannot connect to is forgotten by the cache. FederateFor
// chooses the senders; smarthost routes, address literals and REQUIRETLS messages
// stay on SMTP. A worker whose hosts were all unreachable fails its remaining jobs at
// once, HTTPS included, as it does for SMTP.
//
// # Durability
//
// All state lives in the store. A recipient is marked delivered only after the remote
// server's 250 to the final dot, in a durable store write, so a restart or kill -9
// loses nothing; a crash in the instant between that 250 and our commit makes the
// message go out again on restart, the duplicate that every MTA risks there (RFC 5321
// 6.1). Stop Run (cancel its context and wait for it) before closing the store.
package queue
