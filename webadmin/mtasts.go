package webadmin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// STSPolicyPath is where senders fetch a domain's MTA-STS policy, on the host
// mta-sts.<domain> over HTTPS (RFC 8461 3.3).
const STSPolicyPath = "/.well-known/mta-sts.txt"

// STSPolicy is the MTA-STS policy the server publishes for each of its domains
// (RFC 8461 3.2). Its text and id are derived here only, so that the policy served and
// the id in the _mta-sts TXT record that `coibox dns` prints cannot drift apart.
type STSPolicy struct {
	Mode   string        // "enforce", "testing" or "none"
	MX     []string      // the MX host names senders may deliver to
	MaxAge time.Duration // how long senders keep the policy; whole seconds
}

// Text is the policy file. Lines end in LF, which RFC 8461 3.2 allows alongside CRLF.
func (p STSPolicy) Text() string {
	var b strings.Builder
	b.WriteString("version: STSv1\n")
	fmt.Fprintf(&b, "mode: %s\n", p.Mode)
	for _, mx := range p.MX {
		fmt.Fprintf(&b, "mx: %s\n", strings.TrimSuffix(strings.ToLower(mx), "."))
	}
	fmt.Fprintf(&b, "max_age: %d\n", int64(p.MaxAge/time.Second))
	return b.String()
}

// ID is the policy id for the _mta-sts TXT record: a hash of Text, so that it changes
// exactly when the policy does, which is what tells senders to fetch it again. RFC
// 8461 3.1 allows 1 to 32 letters and digits; 20 hex digits are plenty.
func (p STSPolicy) ID() string {
	sum := sha256.Sum256([]byte(p.Text()))
	return hex.EncodeToString(sum[:10])
}

// TXT is the value of the _mta-sts.<domain> TXT record announcing the policy.
func (p STSPolicy) TXT() string { return "v=STSv1; id=" + p.ID() }

// MTASTS configures serving the policy.
type MTASTS struct {
	Policy STSPolicy
	// Serves reports whether domain is one of the server's mail domains: the policy is
	// answered only on mta-sts.<domain> for those, so that the server does not vouch
	// for MX hosts of domains it knows nothing about.
	Serves func(ctx context.Context, domain string) (bool, error)
}

// stsTimeout bounds the domain lookup of one policy request.
const stsTimeout = 5 * time.Second

// handler serves the policy on GET /.well-known/mta-sts.txt for hosts
// mta-sts.<served domain>, and 404 for every other host.
func (m *MTASTS) handler(log *slog.Logger) http.HandlerFunc {
	text := m.Policy.Text()
	return func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		domain, ok := strings.CutPrefix(host, "mta-sts.")
		if !ok || domain == "" || m.Serves == nil {
			http.NotFound(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), stsTimeout)
		defer cancel()
		served, err := m.Serves(ctx, domain)
		if err != nil {
			// A sender treats a failed fetch as "no new policy" and keeps a cached
			// one, which is the right outcome for a passing store problem.
			log.Warn("mta-sts: look up domain", "domain", domain, "err", err)
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		if !served {
			http.NotFound(w, r)
			return
		}
		// RFC 8461 3.2: the media type is text/plain.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(text))
	}
}
