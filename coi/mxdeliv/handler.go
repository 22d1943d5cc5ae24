package mxdeliv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/internal/ascii"
)

// Listener is the deliver.Envelope Listener of mail received here. It must equal
// coi.ListenerMXDeliv, on which the chat rules key the /mxdeliv origin check; it is
// spelled out rather than imported so that this package does not depend on coi's
// (imapd's) build.
const Listener = "mxdeliv"

// DefaultMaxBytes is the body limit when Options.MaxBytes is unset: chatmail's 30 MiB
// (§10).
const DefaultMaxBytes = 30 << 20

// The fixed answers of §11.1 and the internal ones that are not a pipeline reply.
const (
	replyOK         = "250 OK"
	replyTooBig     = "552 Message exceeds maximum size"
	replyMethod     = "Method Not Allowed"
	replyInternal   = "451 4.3.0 Temporary server error, try again later"
	replyReadFailed = "451 4.4.2 Reading the message failed, try again later"
)

// Pipeline is the part of *deliver.Pipeline the handler uses.
type Pipeline interface {
	AddRecipient(ctx context.Context, env *deliver.Envelope, rcpt string) error
	Deliver(ctx context.Context, m *deliver.Message) (*deliver.Result, error)
}

// Options configure NewHandler.
type Options struct {
	// Pipeline delivers the messages; required.
	Pipeline Pipeline
	// MaxBytes is the largest body accepted; default DefaultMaxBytes. Set it to the
	// pipeline's MaxMessageBytes, so that the limit answers 413 before the body is
	// read rather than the pipeline's 552 after.
	MaxBytes int64
	Logger   *slog.Logger
}

type handler struct {
	p   Pipeline
	max int64
	log *slog.Logger
}

// NewHandler returns the handler of POST /mxdeliv. Mount it on the path without a
// method in the pattern ("/mxdeliv", not "POST /mxdeliv"), so that other methods get
// this handler's 405 with the spec's body rather than the mux's.
func NewHandler(o Options) http.Handler {
	if o.Pipeline == nil {
		panic("mxdeliv: NewHandler without a Pipeline")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &handler{p: o.Pipeline, max: o.MaxBytes, log: o.Logger}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answer(w, http.StatusMethodNotAllowed, replyMethod)
		return
	}
	ctx := r.Context()
	env := &deliver.Envelope{Kind: deliver.MX, Listener: Listener, ID: deliver.NewID(), TLS: r.TLS}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		env.RemoteIP = ap.Addr().Unmap()
	}
	log := h.log.With("id", env.ID, "remote", r.RemoteAddr)
	// A declared length over the limit is refused before anything is looked up.
	if r.ContentLength > h.max {
		log.Info("mxdeliv: refused", "reply", replyTooBig, "bytes", r.ContentLength)
		closeAfter(w)
		answer(w, http.StatusRequestEntityTooLarge, replyTooBig)
		return
	}

	sender, err := parseSender(r.Header.Values(HeaderFrom))
	if err != nil {
		h.refuse(w, log, err)
		return
	}
	env.Sender = sender
	rcpts, err := parseRecipients(r.Header.Values(HeaderTo), MaxRecipients)
	if err != nil {
		h.refuse(w, log, err)
		return
	}
	if len(rcpts) == 0 {
		h.refuse(w, log, errNoRcpts)
		return
	}
	env.SMTPUTF8 = !ascii.Is(sender)
	// Recipients before the body, as SMTP has RCPT before DATA: a refused request
	// costs no read of up to MaxBytes, and nothing is delivered unless all passed.
	for _, rc := range rcpts {
		env.SMTPUTF8 = env.SMTPUTF8 || !ascii.Is(rc)
		if err := h.p.AddRecipient(ctx, env, rc); err != nil {
			if _, ok := deliver.AsReply(err); ok {
				h.refuse(w, log.With("rcpt", rc), err)
				return
			}
			h.internal(w, log, fmt.Errorf("add recipient %s: %w", rc, err))
			return
		}
	}

	body, err := readBody(w, r, h.max)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		log.Info("mxdeliv: refused", "reply", replyTooBig, "limit", h.max)
		answer(w, http.StatusRequestEntityTooLarge, replyTooBig)
		return
	case err != nil:
		// The client went away or stalled; if it is still there, it may retry.
		log.Info("mxdeliv: reading the body failed", "err", err)
		answer(w, http.StatusInternalServerError, replyReadFailed)
		return
	}
	env.EightBit = !ascii.Is(body)

	res, err := h.p.Deliver(ctx, &deliver.Message{Envelope: *env, Body: body})
	if err != nil {
		if errors.Is(err, deliver.ErrTooBig) {
			// The pipeline's limit is below ours: still the answer of §11.1.
			log.Info("mxdeliv: refused", "reply", replyTooBig, "bytes", len(body))
			answer(w, http.StatusRequestEntityTooLarge, replyTooBig)
			return
		}
		if _, ok := deliver.AsReply(err); ok {
			h.refuse(w, log, err)
			return
		}
		h.internal(w, log, fmt.Errorf("deliver message: %w", err))
		return
	}
	for _, f := range res.Failed {
		// Too late to refuse: the others have it (see the package invariants).
		log.Warn("mxdeliv: recipient failed after the recipient check", "rcpt", f.Address, "reply", f.Err.Error())
	}
	log.Info("mxdeliv: delivered", "from", sender, "rcpts", len(env.Recipients), "bytes", len(body), "local", res.Local, "queued", res.Queued)
	answer(w, http.StatusOK, replyOK)
}

// refuse answers a pipeline or parser refusal: HTTP 400 with its SMTP reply line.
func (h *handler) refuse(w http.ResponseWriter, log *slog.Logger, err error) {
	rep, _ := deliver.AsReply(err)
	log.Info("mxdeliv: refused", "reply", rep.Error())
	answer(w, http.StatusBadRequest, rep.Error())
}

func (h *handler) internal(w http.ResponseWriter, log *slog.Logger, err error) {
	log.Error("mxdeliv: internal error", "err", err)
	answer(w, http.StatusInternalServerError, replyInternal)
}

// readBody reads the request body, at most limit bytes; more is *http.MaxBytesError.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	// MaxBytesReader also tells the server to close the connection after an
	// oversized body rather than drain the rest of it.
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 {
		// The length is known and within the limit (checked above): one allocation,
		// and net/http guarantees the body is exactly n bytes.
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		return buf, nil
	}
	buf, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return buf, nil
}

// closeAfter asks net/http to close the connection once the answer is written: the
// unread body of a refused upload is not worth draining.
func closeAfter(w http.ResponseWriter) { w.Header().Set("Connection", "close") }

func answer(w http.ResponseWriter, status int, line string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Length", strconv.Itoa(len(line)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, line)
}
