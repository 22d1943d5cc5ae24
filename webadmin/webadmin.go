// Package webadmin serves coibox's HTTP endpoints: /metrics for Prometheus, /healthz for
// load balancers and service managers, the MTA-STS policy on mta-sts.<domain>, client
// autoconfiguration (Mozilla, Autodiscover, Apple profiles), the chat onboarding paths
// (/new), the redirect of plain HTTP to HTTPS, and the admin UI (/admin).
package webadmin

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Options are what the handler serves.
type Options struct {
	// Metrics serves /metrics, to clients on this host (loopback) or presenting
	// MetricsToken as a bearer token; nil leaves the path unanswered (404).
	Metrics      http.Handler
	MetricsToken string
	// Health reports whether the server can do its job (e.g. the store answers);
	// nil means always healthy.
	Health func(ctx context.Context) error
	// Warnings, if set, lists what an operator should know although the server
	// works (a certificate still self-signed while ACME has not issued one); /healthz
	// prints them after its first line.
	Warnings func() []string
	// MTASTS, if set, serves the MTA-STS policy (see mtasts.go).
	MTASTS *MTASTS
	// Autoconfig, if set, answers mail clients' autoconfiguration (autoconfig.go).
	Autoconfig *Autoconfig
	// Admin, if set, serves the admin UI under /admin (admin.go).
	Admin *Admin
	// MXDeliv, if set, receives mail over POST /mxdeliv (package coi/mxdeliv); it
	// is served over TLS only.
	MXDeliv http.Handler
	// Onboard, if set, serves /new, /cgi-bin/newemail.py, /new.png and the page at /
	// (package coi/onboard, which answers 404 for hosts that are not chatmail domains).
	Onboard http.Handler
	Logger  *slog.Logger
}

// healthTimeout bounds one /healthz probe: a store that takes longer than this to
// answer a trivial read is not healthy, whatever it answers eventually.
const healthTimeout = 2 * time.Second

// New returns the HTTP handler for the endpoints in opts. It fails only if the
// admin UI's embedded templates do not parse.
func New(opts Options) http.Handler {
	h, err := NewHandler(opts)
	if err != nil {
		panic(err) // the templates are part of the binary: a test catches this
	}
	return h
}

// NewHandler is New, returning the error.
func NewHandler(opts Options) (http.Handler, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", metricsGuard(opts.Metrics, opts.MetricsToken))
	}
	if opts.MTASTS != nil {
		mux.Handle("GET "+STSPolicyPath, opts.MTASTS.handler(log))
	}
	if opts.Autoconfig != nil {
		opts.Autoconfig.routes(mux, log)
	}
	if opts.Admin != nil {
		if err := opts.Admin.routes(mux, opts.Health, log); err != nil {
			return nil, err
		}
	}
	if opts.MXDeliv != nil {
		// No method in the pattern: other methods get the handler's own 405.
		mux.Handle("/mxdeliv", tlsOnly(opts.MXDeliv))
	}
	if opts.Onboard != nil {
		for _, p := range []string{"/new", "/cgi-bin/newemail.py", "GET /new.png", "GET /{$}"} {
			mux.Handle(p, opts.Onboard)
		}
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if opts.Health != nil {
			ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
			defer cancel()
			if err := opts.Health(ctx); err != nil {
				log.Warn("health check failed", "err", err)
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("unhealthy: " + err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
		if opts.Warnings != nil {
			for _, l := range opts.Warnings() {
				_, _ = w.Write([]byte("warning: " + l + "\n"))
			}
		}
	})
	return mux, nil
}

// tlsOnly refuses requests that did not come over TLS: mail must not travel, or be
// accepted, in the clear.
func tlsOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "HTTPS only", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// metricsGuard lets loopback clients, and others with the bearer token, read the
// metrics: they tell an outsider how busy the server is and which accounts exist.
func metricsGuard(h http.Handler, token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ip := clientIP(r); ip.IsValid() && ip.IsLoopback() {
			h.ServeHTTP(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token != "" && ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1 {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="coibox metrics"`)
		http.Error(w, "metrics are for this host, or with listen.metrics_token", http.StatusUnauthorized)
	})
}
