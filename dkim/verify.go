package dkim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coibox/coibox/dnsx"
	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// maxSignatures bounds the work one message can cause: each signature costs a DNS
// lookup and a public-key operation. Real mail carries one to three.
const maxSignatures = 8

// Status is the outcome of verifying one signature (RFC 8601 2.7.1).
type Status string

const (
	Pass      Status = "pass"
	Fail      Status = "fail"      // the signature does not match the message
	TempError Status = "temperror" // the key could not be fetched; try later
	PermError Status = "permerror" // the signature or key is unusable
)

// Result is the verdict on one DKIM-Signature field.
type Result struct {
	Domain    string // d=
	Selector  string // s=
	Algorithm string // a=, e.g. "ed25519-sha256"
	Status    Status
	Reason    string // why it did not pass; empty on pass
}

// Verify checks every DKIM signature of msg (at most the first eight), fetching keys
// through r, and returns one result per signature in header order. A message without
// signatures gives no results. The error is non-nil only when ctx ends.
func Verify(ctx context.Context, r *dnsx.Resolver, msg []byte) ([]Result, error) {
	fields, complete := headerFields(msg)
	var results []Result
	for _, f := range fields {
		if !strings.EqualFold(f.name, "DKIM-Signature") {
			continue
		}
		if len(results) == maxSignatures {
			break
		}
		tags := parseTags(f.value)
		results = append(results, Result{Domain: strings.ToLower(tags["d"]), Selector: tags["s"], Algorithm: tags["a"]})
	}
	if len(results) == 0 {
		return nil, nil
	}
	if !complete {
		msg = completeHeader(msg)
	}
	verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), &msgdkim.VerifyOptions{
		LookupTXT:        r.TXTFunc(ctx),
		MaxVerifications: maxSignatures,
	})
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("verify dkim: %w", ctxErr)
	}
	if err != nil && !errors.Is(err, msgdkim.ErrTooManySignatures) {
		// Only an unreadable message gets here; no signature of it can pass.
		for i := range results {
			results[i].Status, results[i].Reason = PermError, reason(err)
		}
		return results, nil
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
		results[i].Status = status(v.Err)
		if v.Err != nil {
			results[i].Reason = reason(v.Err)
		}
	}
	return results, nil
}

func status(err error) Status {
	switch {
	case err == nil:
		return Pass
	case msgdkim.IsTempFail(err):
		return TempError
	case msgdkim.IsPermFail(err):
		return PermError
	}
	return Fail
}

func reason(err error) string {
	return strings.TrimPrefix(err.Error(), "dkim: ")
}
