package onboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The paths the Handler answers on a chatmail domain's host. cmd routes them (and
// nothing else) to it.
const (
	// PathNew makes credentials (POST) or opens the app (GET, §4).
	PathNew = "/new"
	// PathLegacy is the relay's old name for PathNew, still on printed QR codes.
	PathLegacy = "/cgi-bin/newemail.py"
	// PathPage is the web page with the QR code; a person who types the domain into a
	// browser lands there.
	PathPage = "/"
	// PathQR is the page's QR code as a PNG image.
	PathQR = "/new.png"
)

// Info is what the Handler needs to know about one chatmail domain.
type Info struct {
	// Name is the domain as addresses spell it; it is what URLs and addresses use, not
	// the request's Host header.
	Name string
	// RegistrationOpen is registration=open: /new hands out credentials.
	RegistrationOpen bool
	// PasswordMin is password_min; /new passwords have PasswordExtra more characters.
	PasswordMin int
	// SelfSigned is a self-signed certificate: /new adds a dclogin_url, because
	// Delta Chat refuses such a certificate when it fetches a DCACCOUNT URL.
	SelfSigned bool
}

// Options configure NewHandler. Domain and Exists are required; zero values of the rest
// take the defaults noted.
type Options struct {
	// Domain looks up the chatmail domain for a request's host (lower-case, without
	// port or final dot) and reports false for any host that is not one.
	Domain func(ctx context.Context, host string) (Info, bool)
	// Exists reports whether an address is taken (an account, an alias or a
	// tombstone), so that /new skips it.
	Exists func(ctx context.Context, address string) (bool, error)
	// Limit and Burst are the per-client rate limit on the /new paths (default 2 per
	// second, burst 5), counted per /24 (IPv4) or /64 (IPv6).
	Limit rate.Limit
	Burst int
	// MaxClients bounds the client networks whose buckets are kept (default 4096).
	MaxClients int
	// Now is the clock; tests replace it.
	Now    func() time.Time
	Logger *slog.Logger
}

// lookupTimeout bounds the store lookups of one request, as webadmin does.
const lookupTimeout = 5 * time.Second

// Handler serves /new, its legacy path, the web page and its QR code for every
// chatmail domain, chosen by the request's Host.
type Handler struct {
	opts    Options
	log     *slog.Logger
	clients *clients
	page    *template.Template
	csp     string

	qrMu sync.Mutex
	qr   map[string][]byte // PNG by domain name; see qrPNG
}

// NewHandler returns a Handler over opts.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Domain == nil || opts.Exists == nil {
		return nil, errors.New("make onboard handler: Options.Domain and Options.Exists are required")
	}
	if opts.Limit <= 0 {
		opts.Limit = 2
	}
	if opts.Burst <= 0 {
		opts.Burst = 5
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = 4096
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	page, err := template.New("page").Parse(pageTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse page template: %w", err)
	}
	return &Handler{
		opts:    opts,
		log:     opts.Logger,
		clients: newClients(opts.Limit, opts.Burst, opts.MaxClients),
		page:    page,
		csp:     pagePolicy(),
		qr:      make(map[string][]byte),
	}, nil
}

// ServeHTTP answers 404 for hosts that are not chatmail domains and for other paths.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := requestHost(r.Host)
	if host == "" {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), lookupTimeout)
	defer cancel()
	info, ok := h.opts.Domain(ctx, host)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if info.Name == "" {
		info.Name = host
	}
	info.Name = strings.ToLower(info.Name)
	switch r.URL.Path {
	case PathNew, PathLegacy:
		h.serveNew(ctx, w, r, info)
	case PathPage:
		h.servePage(w, r, info)
	case PathQR:
		h.serveQR(w, r, info)
	default:
		http.NotFound(w, r)
	}
}

// requestHost is Host without port and final dot, lower-cased.
func requestHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// newResponse is the body of a successful POST /new. Delta Chat reads email and
// password; dclogin_url is for self-signed servers.
type newResponse struct {
	Email      string `json:"email"`
	Password   string `json:"password"`
	DCLoginURL string `json:"dclogin_url,omitempty"`
}

// reasonResponse is every refusal on the /new paths; Delta Chat shows reason.
type reasonResponse struct {
	Reason string `json:"reason"`
}

func (h *Handler) serveNew(ctx context.Context, w http.ResponseWriter, r *http.Request, info Info) {
	// Every method counts, so that a flood of anything on /new is cut off alike.
	if !h.clients.allow(clientNetwork(r.RemoteAddr), h.opts.Now()) {
		h.log.Debug("onboard: /new rate limited", "domain", info.Name, "network", clientNetwork(r.RemoteAddr).String())
		writeJSON(w, http.StatusTooManyRequests, reasonResponse{"too many requests"})
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		// A browser that opens the QR code's URL hands it to the app. Core itself
		// never follows redirects, so this answer reaches only browsers.
		w.Header().Set("Location", "dcaccount:https://"+info.Name+PathNew)
		w.WriteHeader(http.StatusMovedPermanently)
	case http.MethodPost:
		if !info.RegistrationOpen {
			writeJSON(w, http.StatusForbidden, reasonResponse{"registration is closed"})
			return
		}
		creds, err := NewCredentials(ctx, info.Name, info.PasswordMin, h.opts.Exists)
		if err != nil {
			h.log.Error("onboard: /new failed", "domain", info.Name, "err", err)
			writeJSON(w, http.StatusInternalServerError, reasonResponse{"internal server error"})
			return
		}
		resp := newResponse{Email: creds.Email, Password: creds.Password}
		if info.SelfSigned {
			resp.DCLoginURL = creds.DCLoginURL()
		}
		// No address in the log: nothing is stored until the first login, and a log
		// line would be the only record tying an address to a client.
		h.log.Debug("onboard: credentials handed out", "domain", info.Name)
		writeJSON(w, http.StatusOK, resp)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeJSON(w, http.StatusMethodNotAllowed, reasonResponse{"method not allowed"})
	}
}

// writeJSON writes v as the whole body. HTML escaping stays off, since the body is
// never HTML and the punctuation of passwords and dclogin URLs should read as itself.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own fixed structs of strings come here; they always encode.
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("X-Content-Type-Options", "nosniff")
	// Credentials must never be kept by a cache on the way.
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
