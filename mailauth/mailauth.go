// Package mailauth judges where inbound mail comes from: SPF, DKIM and DMARC checks,
// the resulting accept/quarantine/reject decision, and the Authentication-Results field.
package mailauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"blitiri.com.ar/go/spf"
	"github.com/coibox/coibox/dnsx"
	msgdkim "github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/idna"
)

// maxSignatures bounds the DNS lookups and public-key operations one message can
// cause; real mail carries one to three signatures.
const maxSignatures = 8

// Result is a method's outcome as RFC 8601 names it.
type Result string

const (
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	Neutral   Result = "neutral"
	None      Result = "none"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// Policy is a DMARC p= or sp= value.
type Policy string

const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// Action is what the receiving server should do with the message.
type Action int

const (
	Accept     Action = iota
	Quarantine        // deliver to the recipient's Junk folder
	Reject            // refuse with Verdict.Reply (5xx)
	Defer             // refuse for now with Verdict.Reply (4xx); the sender retries
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Quarantine:
		return "quarantine"
	case Reject:
		return "reject"
	case Defer:
		return "defer"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Input is what the SMTP session knows about a message.
type Input struct {
	RemoteIP net.IP // the connecting client; nil when there is none (HTTPS /mxdeliv)
	Helo     string
	MailFrom string // envelope sender without angle brackets; "" for the null sender
	Message  []byte // the raw message, as received
	Hostname string // our authserv-id, normally the MX host name

	// DKIMOnly applies the chatmail inbound rule instead of SPF and DMARC: the message
	// needs a valid DKIM signature whose d= is exactly the From domain (a From IP
	// literal must instead equal RemoteIP). No SPF and no DMARC lookups are made.
	DKIMOnly bool
}

// SPFResult is the SPF check of the envelope sender (RFC 7208).
type SPFResult struct {
	Result   Result
	Domain   string // the domain checked: MAIL FROM's, or HELO's for the null sender
	MailFrom string // the envelope sender; "" when HELO was checked instead
	Helo     string
}

// DKIMResult is the verdict on one DKIM-Signature field.
type DKIMResult struct {
	Domain    string // d=, lower case
	Selector  string // s=
	Algorithm string // a=, e.g. "ed25519-sha256"
	Status    Result // pass, fail, temperror or permerror
	Reason    string // why it did not pass
}

// DMARCResult is the DMARC evaluation of the From domain (RFC 7489).
type DMARCResult struct {
	Result Result // pass, fail, none (no policy), temperror, permerror (no usable From)
	Policy Policy // the policy that applies to From; "" without a record
	From   string // RFC5322.From domain, lower-case A-labels
}

// Verdict is everything Check found out, and what to do about it.
type Verdict struct {
	SPF    SPFResult
	DKIM   []DKIMResult
	DMARC  DMARCResult
	Action Action
	Reply  string // for Reject and Defer: the SMTP reply, e.g. "550 5.7.1 …"

	authservID string
	dkimOnly   bool
}

// Check authenticates a message: SPF for the envelope, every DKIM signature, then
// DMARC on the From domain, and decides an Action. The error is non-nil only for a
// missing Hostname or when ctx ends; DNS trouble shows up as temperror results.
func Check(ctx context.Context, r *dnsx.Resolver, in Input) (Verdict, error) {
	if in.Hostname == "" {
		return Verdict{}, errors.New("check mail authentication: no hostname")
	}
	v := Verdict{authservID: in.Hostname, dkimOnly: in.DKIMOnly}
	fields, complete := scanHeader(in.Message)

	var wg sync.WaitGroup
	if !in.DKIMOnly {
		wg.Go(func() { v.SPF = checkSPF(ctx, r, in) })
	}
	v.DKIM = verifyDKIM(ctx, r, in.Message, fields, complete)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Verdict{}, fmt.Errorf("check mail authentication: %w", err)
	}

	from, ok := singleFromDomain(fields)
	v.DMARC.From = from
	switch {
	case in.DKIMOnly:
		v.decideDKIMOnly(from, ok, in.RemoteIP)
	case !ok:
		// RFC 7489 6.6.1: without exactly one From domain there is nothing to align
		// with, and such messages are a known way to show one sender and sign another.
		v.DMARC.Result = PermError
		v.Action = Reject
		v.Reply = "550 5.7.1 Message must have exactly one From header field with one domain"
	default:
		v.evaluateDMARC(ctx, r)
	}
	if err := ctx.Err(); err != nil {
		return Verdict{}, fmt.Errorf("check mail authentication: %w", err)
	}
	return v, nil
}

// checkSPF evaluates the client IP against the envelope sender's domain.
func checkSPF(ctx context.Context, r *dnsx.Resolver, in Input) SPFResult {
	domain := in.Helo
	if at := strings.LastIndexByte(in.MailFrom, '@'); at >= 0 {
		domain = in.MailFrom[at+1:]
	}
	res := SPFResult{Result: None, Domain: normalizeDomain(domain), MailFrom: in.MailFrom, Helo: in.Helo}
	if in.RemoteIP == nil || res.Domain == "" {
		return res
	}
	result, _ := spf.CheckHostWithSender(in.RemoteIP, in.Helo, in.MailFrom,
		spf.WithContext(ctx), spf.WithResolver(r.Compat()))
	res.Result = Result(result)
	return res
}

// verifyDKIM checks every signature (at most maxSignatures) with go-msgauth, naming
// each by the selector and algorithm its field declares.
func verifyDKIM(ctx context.Context, r *dnsx.Resolver, msg []byte, fields []field, complete bool) []DKIMResult {
	var results []DKIMResult
	for _, f := range fields {
		if !strings.EqualFold(f.name, "DKIM-Signature") {
			continue
		}
		if len(results) == maxSignatures {
			break
		}
		tags := parseTags(string(f.value))
		results = append(results, DKIMResult{Domain: strings.ToLower(tags["d"]), Selector: tags["s"], Algorithm: tags["a"]})
	}
	if len(results) == 0 {
		return nil
	}
	if !complete {
		// go-msgauth cannot read a header without the empty line after it; adding
		// it changes nothing the signature covers.
		msg = append(bytes.Clone(msg), "\r\n\r\n"...)
	}
	verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), &msgdkim.VerifyOptions{
		LookupTXT:        r.TXTFunc(ctx),
		MaxVerifications: maxSignatures,
	})
	if err != nil && !errors.Is(err, msgdkim.ErrTooManySignatures) {
		for i := range results {
			results[i].Status, results[i].Reason = PermError, dkimReason(err)
		}
		return results
	}
	for i := range results {
		if i >= len(verifs) {
			results[i].Status, results[i].Reason = PermError, "not verified"
			continue
		}
		v := verifs[i]
		if v.Domain != "" {
			results[i].Domain = strings.ToLower(v.Domain)
		}
		switch {
		case v.Err == nil:
			results[i].Status = Pass
		case msgdkim.IsTempFail(v.Err):
			results[i].Status = TempError
		case msgdkim.IsPermFail(v.Err):
			results[i].Status = PermError
		default:
			results[i].Status = Fail
		}
		if v.Err != nil {
			results[i].Reason = dkimReason(v.Err)
		}
	}
	return results
}

func dkimReason(err error) string { return strings.TrimPrefix(err.Error(), "dkim: ") }

// singleFromDomain returns the From domain when the message has exactly one From
// field and all its addresses share one domain.
func singleFromDomain(fields []field) (string, bool) {
	var from *field
	for i := range fields {
		if strings.EqualFold(fields[i].name, "From") {
			if from != nil {
				return "", false
			}
			from = &fields[i]
		}
	}
	if from == nil {
		return "", false
	}
	domains := fromDomains(unfold(from.value))
	if len(domains) == 0 {
		return "", false
	}
	for _, d := range domains[1:] {
		if d != domains[0] {
			return "", false
		}
	}
	return normalizeDomain(domains[0]), true
}

// decideDKIMOnly applies the chatmail rule (coibox spec 8): strict DKIM alignment, no
// SPF, no DMARC.
func (v *Verdict) decideDKIMOnly(from string, ok bool, remote net.IP) {
	if ok && strings.HasPrefix(from, "[") {
		lit := strings.TrimPrefix(strings.Trim(from, "[]"), "ipv6:")
		if ip := net.ParseIP(lit); ip != nil && remote != nil && ip.Equal(remote) {
			v.Action = Accept
			return
		}
	}
	if len(v.DKIM) == 0 {
		v.Action, v.Reply = Reject, "554 5.7.1 No DKIM signature found"
		return
	}
	temp := false
	for _, d := range v.DKIM {
		if !ok || d.Domain != from {
			continue
		}
		switch d.Status {
		case Pass:
			v.Action = Accept
			return
		case TempError:
			temp = true
		}
	}
	if temp {
		// The key may well verify once DNS answers; refusing for good would lose
		// legitimate mail over a resolver hiccup.
		v.Action, v.Reply = Defer, "451 4.7.5 DKIM key of "+from+" could not be fetched, try again later"
		return
	}
	v.Action, v.Reply = Reject, "554 5.7.1 No valid DKIM signature found"
}

// normalizeDomain lower-cases d, drops a trailing dot and turns U-labels into
// A-labels, the form DNS and DKIM d= use; what idna refuses is only lower-cased.
func normalizeDomain(d string) string {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if a, err := idna.Lookup.ToASCII(d); err == nil {
		return a
	}
	return d
}
