package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/coibox/coibox/coi"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/mailauth"
	"github.com/coibox/coibox/metrics"
	"github.com/coibox/coibox/queue"
	"github.com/coibox/coibox/store"
)

// dkimDir is the data directory's folder of DKIM keys (package dkim's KeyStore).
const dkimDir = "dkim"

// junkMailbox and junkFlag file a message DMARC says to quarantine.
const (
	junkMailbox = "Junk"
	junkFlag    = "$Junk"
)

// authCheck is the delivery pipeline's SPF, DKIM and DMARC check for mail from other
// servers: it drops forged Authentication-Results fields, adds ours, and files,
// refuses or defers the message as mailauth decides. Submitted mail and mail from
// this machine's own loopback address (127.0.0.1 or ::1: local tools and tests) are
// not checked, since SPF and DMARC have nothing to say about a client that is the
// server itself. The rest of 127.0.0.0/8 is checked: tests and benchmarks run other
// servers there (127.0.0.2, 127.0.0.3, …) whose mail must be judged like anyone's.
//
// dkimOnly (nil: never) says when the chat rules want chatmail's origin check
// instead (coi.Chat.InboundDKIMOnly): then no Authentication-Results field is added.
func authCheck(r *dnsx.Resolver, hostname string, log *slog.Logger, dkimOnly func(context.Context, *deliver.Envelope) (bool, error)) deliver.Check {
	return func(ctx context.Context, m *deliver.Message) (*deliver.Verdict, error) {
		m.Body = mailauth.StripForged(m.Body, hostname)
		mxdeliv := m.Listener == coi.ListenerMXDeliv
		if m.Kind != deliver.MX || (!mxdeliv && (!m.RemoteIP.IsValid() || isSelf(m.RemoteIP))) {
			return nil, nil
		}
		only := false
		if dkimOnly != nil {
			var err error
			if only, err = dkimOnly(ctx, &m.Envelope); err != nil {
				return nil, err
			}
		}
		in := mailauth.Input{
			Helo:     m.HELO,
			MailFrom: m.Sender,
			Message:  m.Body,
			Hostname: hostname,
			DKIMOnly: only,
		}
		if !mxdeliv {
			in.RemoteIP = net.IP(m.RemoteIP.AsSlice())
		}
		v, err := mailauth.Check(ctx, r, in)
		if err != nil {
			return nil, fmt.Errorf("check mail authentication: %w", err)
		}
		header := []string{strings.TrimSuffix(v.Header(), "\r\n")}
		if only {
			header = nil // chatmail §7.3: delivered without Authentication-Results
		}
		switch v.Action {
		case mailauth.Quarantine:
			log.Info("quarantined", "id", m.ID, "from", v.DMARC.From, "dmarc", v.DMARC.Result)
			return &deliver.Verdict{Header: header, Mailbox: junkMailbox, Flags: []string{junkFlag}}, nil
		case mailauth.Reject, mailauth.Defer:
			return &deliver.Verdict{Reject: parseReply(v.Reply, v.Action == mailauth.Defer)}, nil
		}
		return &deliver.Verdict{Header: header}, nil
	}
}

// isSelf reports whether ip is the loopback address a local program connects from.
func isSelf(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip == netip.IPv6Loopback() || ip == netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// parseReply turns mailauth's "550 5.7.1 text" into a deliver.Reply. A reply it cannot
// read still refuses, with the generic code for the action.
func parseReply(s string, temporary bool) *deliver.Reply {
	r := &deliver.Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Message: s, Reason: metrics.ReasonPolicy}
	if temporary {
		r.Code, r.Enhanced = 451, [3]int{4, 7, 1}
	}
	code, rest, _ := strings.Cut(s, " ")
	n, err := strconv.Atoi(code)
	if err != nil || n < 400 || n > 599 || (n/100 == 4) != temporary {
		return r
	}
	r.Code, r.Message = n, rest
	enh, text, _ := strings.Cut(rest, " ")
	parts := strings.Split(enh, ".")
	if len(parts) == 3 {
		var e [3]int
		ok := true
		for i, p := range parts {
			if e[i], err = strconv.Atoi(p); err != nil {
				ok = false
			}
		}
		if ok && e[0] == n/100 {
			r.Enhanced, r.Message = e, text
		}
	}
	return r
}

// localDSN delivers a bounce or delay notice straight into a local sender's mailbox
// through the pipeline, so that it needs no trip through our own MX. It reports
// handled=false for senders elsewhere, which the queue then sends out.
func localDSN(s *store.Store, p *deliver.Pipeline, hostname string) func(ctx context.Context, rcpt string, msg []byte) (bool, error) {
	return func(ctx context.Context, rcpt string, msg []byte) (bool, error) {
		if _, err := s.Resolve(ctx, rcpt); errors.Is(err, store.ErrNotLocal) {
			return false, nil
		}
		env := deliver.Envelope{Kind: deliver.MX, Listener: "dsn", HELO: hostname}
		if err := p.AddRecipient(ctx, &env, rcpt); err != nil {
			if r, ok := deliver.AsReply(err); ok && !r.Temporary() {
				// A local sender that no longer exists: nobody is left to tell.
				return true, nil
			}
			return false, err
		}
		if _, err := p.Deliver(ctx, &deliver.Message{Envelope: env, Body: msg}); err != nil {
			if r, ok := deliver.AsReply(err); ok && !r.Temporary() {
				return true, nil
			}
			return false, err
		}
		return true, nil
	}
}

// smarthost is the queue's relay from the [queue] keys; nil delivers to each MX.
func smarthost(cfg *config.Config) *queue.Smarthost {
	if cfg.Queue.Smarthost == "" {
		return nil
	}
	return &queue.Smarthost{
		Addr:     cfg.Queue.Smarthost,
		User:     cfg.Queue.SmarthostUser,
		Password: cfg.Queue.SmarthostPassword,
		TLS:      cfg.Queue.SmarthostTLS,
	}
}

// outboundDialTimeout bounds connecting to a remote MX, as the queue's own default does.
const outboundDialTimeout = 30 * time.Second

// outboundDialer makes the queue's connections leave from queue.source_ip; nil (the
// queue's default dialer) lets the system choose the address.
func outboundDialer(cfg *config.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if cfg.Queue.SourceIP == "" {
		return nil
	}
	d := &net.Dialer{Timeout: outboundDialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(cfg.Queue.SourceIP)}}
	return d.DialContext
}
