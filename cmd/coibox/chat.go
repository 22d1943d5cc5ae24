package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/coibox/coibox/coi"
	"github.com/coibox/coibox/coi/coiext"
	"github.com/coibox/coibox/coi/mxdeliv"
	"github.com/coibox/coibox/coi/profile"
	"github.com/coibox/coibox/coi/turn"
	"github.com/coibox/coibox/coi/webpush"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/queue"
	"github.com/coibox/coibox/store"
)

// startTURN starts the embedded TURN server when chat.turn_listen is set and a
// chatmail domain's profile asks for it; nil when not. A failure to start is logged
// and leaves calls to the clients' built-in servers: it must not stop mail.
func startTURN(ctx context.Context, cfg *config.Config, s *store.Store, log *slog.Logger) *turn.Server {
	if cfg.Chat.TURNListen == "" {
		return nil
	}
	doms, err := s.Domains(ctx)
	if err != nil {
		log.Error("turn: list domains", "err", err)
		return nil
	}
	wanted := false
	for _, d := range doms {
		if p, err := coi.StoredProfile(&d); err == nil && p.Chatmail && p.TURN.Mode == profile.TURNEmbedded {
			wanted = true
		}
	}
	if !wanted {
		return nil
	}
	ip := net.ParseIP(cfg.Chat.TURNPublicIP)
	if ip == nil {
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", cfg.Hostname)
		if err != nil || len(ips) == 0 {
			log.Warn("turn: not started: no IPv4 address for the hostname; set chat.turn_public_ip", "hostname", cfg.Hostname, "err", err)
			return nil
		}
		ip = ips[0]
	}
	srv, err := turn.New(ctx, turn.Options{
		ListenAddr:         cfg.Chat.TURNListen,
		PublicIP:           ip,
		Realm:              cfg.Hostname,
		SecretFile:         filepath.Join(cfg.DataDir, turn.SecretFileName),
		AllowLoopbackPeers: cfg.Chat.TURNAllowLoopback,
		Logger:             log,
	})
	if err != nil {
		log.Error("turn: not started", "listen", cfg.Chat.TURNListen, "err", err)
		return nil
	}
	log.Info("turn: serving", "udp", srv.UDPAddr().String(), "tcp", srv.TCPAddr().String(), "relay", ip.String())
	return srv
}

// turnValue gives the chat rules the /shared/vendor/deltachat/turn value of a
// domain's profile: the embedded server's credentials, or an external server's made
// from its shared secret, or "" for none.
func turnValue(hostname string, embedded *turn.Server, log *slog.Logger) func(profile.Profile, time.Time) string {
	return func(p profile.Profile, now time.Time) string {
		switch p.TURN.Mode {
		case profile.TURNEmbedded:
			if embedded == nil {
				return ""
			}
			return embedded.Secret().MetadataValue(hostname, embedded.Port(), now)
		case profile.TURNExternal:
			host, port, err := net.SplitHostPort(p.TURN.Addr)
			n, perr := strconv.Atoi(port)
			if err != nil || perr != nil {
				return ""
			}
			sec, err := turn.NewSecret([]byte(p.TURN.Secret))
			if err != nil {
				log.Warn("turn: external secret unusable", "err", fmt.Sprint(err))
				return ""
			}
			return sec.MetadataValue(host, n, now)
		}
		return ""
	}
}

// federation is the queue's HTTPS /mxdeliv sender, nil when chat.mxdeliv_outbound is
// off. It resolves MX hosts through the same resolver as SMTP.
func federation(cfg *config.Config, r *dnsx.Resolver, log *slog.Logger) queue.Federation {
	if !cfg.Chat.MXDelivOutbound {
		return nil
	}
	return mxdeliv.NewClient(mxdeliv.ClientOptions{Resolver: r, Port: cfg.Chat.MXDelivPort, Logger: log})
}

// coiCheck is the pipeline's COI step (tagging and filing chat mail), a no-op when
// coi.enabled is off. It comes last: the server's own policy (Junk) files first.
func coiCheck(x *coiext.Ext) deliver.Check {
	if x == nil {
		return func(context.Context, *deliver.Message) (*deliver.Verdict, error) { return nil, nil }
	}
	return x.Check
}

// startWebPush makes the IMAP WebPush service when COI is on ([coi] enabled): the
// VAPID key from the data directory (made once), the [webpush] settings, and the
// subscriptions kept as the accounts' METADATA. Its notifier runs from serve.
func startWebPush(cfg *config.Config, s *store.Store, r *dnsx.Resolver, log *slog.Logger) (*webpush.Service, error) {
	if !cfg.COI.Enabled {
		return nil, nil
	}
	key, err := webpush.LoadKey(filepath.Join(cfg.DataDir, webpush.KeyFileName))
	if err != nil {
		return nil, err
	}
	// The subscriptions are METADATA rows; coi.Chat reads and removes them, but it
	// is made after this service, so these go through the store directly.
	subs := coi.New(coi.Options{Store: s})
	load, remove := subs.WebPushStore()
	w := cfg.WebPush
	return webpush.New(key, webpush.Options{
		PrimaryDomain:     cfg.Hostname,
		SubscriptionLimit: w.SubscriptionLimit,
		ValidationWindow:  time.Duration(w.ValidationWindow),
		Timeout:           time.Duration(w.Timeout),
		TTL:               time.Duration(w.TTL),
		Padding:           w.Padding,
		AllowEndpoints:    w.AllowEndpoints,
		HTTPSProxy:        w.HTTPSProxy,
		Resolver:          r.NetResolver(),
		Load:              load,
		Remove:            remove,
		Logger:            log,
	})
}
