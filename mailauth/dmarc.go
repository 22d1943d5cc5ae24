package mailauth

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"

	"github.com/coibox/coibox/dnsx"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// evaluateDMARC looks up the From domain's policy, checks identifier alignment and
// sets v.DMARC, v.Action and v.Reply.
func (v *Verdict) evaluateDMARC(ctx context.Context, r *dnsx.Resolver) {
	from := v.DMARC.From
	if strings.HasPrefix(from, "[") {
		// An address literal has no DNS and hence no policy.
		v.DMARC.Result = None
		return
	}
	rec, policy, err := lookupPolicy(ctx, r, from)
	switch {
	case err != nil:
		v.DMARC.Result = TempError
		if v.aligned(from, dmarc.AlignmentStrict, dmarc.AlignmentStrict) {
			// Exactly aligned mail passes under any policy the domain could have.
			return
		}
		v.Action = Defer
		v.Reply = "451 4.7.1 DMARC policy of " + from + " could not be looked up, try again later"
		return
	case rec == nil:
		v.DMARC.Result = None
		return
	}
	v.DMARC.Policy = policy
	if v.aligned(from, rec.DKIMAlignment, rec.SPFAlignment) {
		v.DMARC.Result = Pass
		return
	}
	v.DMARC.Result = Fail
	if rec.Percent != nil && rand.IntN(100) >= *rec.Percent {
		// RFC 7489 6.6.4: mail outside the sample gets the next milder policy.
		switch policy {
		case PolicyReject:
			policy = PolicyQuarantine
		case PolicyQuarantine:
			policy = PolicyNone
		}
	}
	if policy != PolicyNone && v.mayPassLater(from, rec) {
		v.Action = Defer
		v.Reply = "451 4.7.1 DMARC check of " + from + " failed temporarily, try again later"
		return
	}
	switch policy {
	case PolicyReject:
		v.Action = Reject
		v.Reply = "550 5.7.1 DMARC policy of " + from + " rejects this message"
	case PolicyQuarantine:
		v.Action = Quarantine
	}
}

// lookupPolicy finds the DMARC record for from, falling back to its organizational
// domain (RFC 7489 6.6.3), and returns it with the policy that applies: sp= when the
// record came from the organizational domain and from is below it. A nil record and
// nil error mean no policy; an error means a temporary DNS failure.
func lookupPolicy(ctx context.Context, r *dnsx.Resolver, from string) (*dmarc.Record, Policy, error) {
	opts := &dmarc.LookupOptions{LookupTXT: r.TXTFunc(ctx)}
	rec, err := dmarc.LookupWithOptions(from, opts)
	if err == nil {
		return rec, Policy(rec.Policy), nil
	}
	if dmarc.IsTempFail(err) {
		return nil, "", err
	}
	org := orgDomain(from)
	if !errors.Is(err, dmarc.ErrNoPolicy) || org == from {
		// A broken record is as good as none (RFC 7489 6.6.3 step 5).
		return nil, "", nil
	}
	rec, err = dmarc.LookupWithOptions(org, opts)
	if err != nil {
		if dmarc.IsTempFail(err) {
			return nil, "", err
		}
		return nil, "", nil
	}
	if rec.SubdomainPolicy != "" {
		return rec, Policy(rec.SubdomainPolicy), nil
	}
	return rec, Policy(rec.Policy), nil
}

// aligned reports whether a passing DKIM signature or a passing SPF check vouches for
// from under the given alignment modes (RFC 7489 3.1).
func (v *Verdict) aligned(from string, dkimMode, spfMode dmarc.AlignmentMode) bool {
	for _, d := range v.DKIM {
		if d.Status == Pass && alignedDomain(d.Domain, from, dkimMode) {
			return true
		}
	}
	return v.SPF.Result == Pass && alignedDomain(v.SPF.Domain, from, spfMode)
}

// mayPassLater reports whether a temporary error hit an identifier that would have
// been aligned, so that the DMARC failure may not be final.
func (v *Verdict) mayPassLater(from string, rec *dmarc.Record) bool {
	for _, d := range v.DKIM {
		if d.Status == TempError && alignedDomain(d.Domain, from, rec.DKIMAlignment) {
			return true
		}
	}
	return v.SPF.Result == TempError && alignedDomain(v.SPF.Domain, from, rec.SPFAlignment)
}

func alignedDomain(id, from string, mode dmarc.AlignmentMode) bool {
	id = normalizeDomain(id)
	if id == "" {
		return false
	}
	if id == from {
		return true
	}
	return mode != dmarc.AlignmentStrict && orgDomain(id) == orgDomain(from)
}

// orgDomain is the organizational domain (RFC 7489 3.2): one label below the public
// suffix. A name that is itself a public suffix is its own organizational domain.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}
