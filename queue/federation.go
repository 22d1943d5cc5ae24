package queue

import (
	"context"
	"strings"

	"github.com/coibox/coibox/store"
)

// offers is one delivery attempt's use of Options.Federation: the signed message
// and the hosts whose /mxdeliv it was already offered to, so that each host is asked
// once per attempt (a kept SMTP connection that turns out dead, then a new one to the
// same host, must not post the message twice) and a successful SMTP fallback can be
// told to the cache.
type offers struct {
	fed       Federation
	sig, body []byte
	msg       []byte          // sig+body, built at the first offer
	refused   map[string]bool // hosts offered the message that did not take it
}

// federation returns j's offers, or nil when j goes by SMTP alone.
func (q *Queue) federation(j *job, sig, body []byte) *offers {
	f := q.opts.Federation
	// An address literal has no name for HTTPS to verify; REQUIRETLS needs an SMTP
	// peer announcing it; a smarthost takes everything.
	if f == nil || q.opts.Smarthost != nil || j.entry.RequireTLS || strings.HasPrefix(j.domain, "[") {
		return nil
	}
	if want := q.opts.FederateFor; want != nil {
		_, domain, _ := store.SplitAddress(strings.ToLower(j.entry.Sender))
		if !want(domain) {
			return nil
		}
	}
	return &offers{fed: f, sig: sig, body: body}
}

// offer posts j to host's /mxdeliv unless it was offered already or the cache
// skips host. It returns the results when host took the message, else nil: the
// caller goes on by SMTP to the same host.
func (w *worker) offer(ctx context.Context, j *job, o *offers, host string) []result {
	if o == nil || o.refused[host] || o.fed.Skip(host) {
		return nil
	}
	if o.msg == nil {
		// The bytes SMTP would send: one signature, made once per attempt.
		o.msg = o.body
		if len(o.sig) > 0 {
			o.msg = append(append(make([]byte, 0, len(o.sig)+len(o.body)), o.sig...), o.body...)
		}
	}
	rcpts := make([]string, len(j.entry.Rcpts))
	for i, r := range j.entry.Rcpts {
		rcpts[i] = r.Rcpt
	}
	ok, err := o.fed.Deliver(ctx, host, j.entry.Sender, rcpts, o.msg)
	if !ok {
		if o.refused == nil {
			o.refused = map[string]bool{}
		}
		o.refused[host] = true
		w.q.log.Info("queue: /mxdeliv did not take the message, trying SMTP", "queue_id", j.entry.ID, "mx", host, "err", err)
		return nil
	}
	out := make([]result, len(j.entry.Rcpts))
	for i, r := range j.entry.Rcpts {
		out[i] = result{rcpt: r, kind: delivered, diag: "250 2.0.0 delivered over HTTPS /mxdeliv", status: "2.0.0", remote: host}
	}
	return out
}

// smtpTook tells the cache that SMTP to host delivered what its /mxdeliv had not,
// so that the next messages go straight to SMTP there for a while (§11.2).
func (o *offers) smtpTook(host string, results []result) {
	if o == nil || !o.refused[host] {
		return
	}
	for _, r := range results {
		if r.kind == delivered {
			o.fed.MarkSMTP(host)
			return
		}
	}
}
