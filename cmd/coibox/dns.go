package main

import (
	"context"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/coibox/coibox/coi"
	"github.com/coibox/coibox/coi/profile"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/store"
	"github.com/coibox/coibox/webadmin"
)

// cmdDNS is `coibox dns DOMAIN`, which prints every record the domain needs (the plan
// in dnscmd.go), and `coibox dns check DOMAIN`, which looks them up.
func cmdDNS(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("dns")
	fs.StringVar(&configPath, "config", configPath, "config file")
	pos, err := parseArgs(fs, args, 1, 2)
	if err != nil {
		return err
	}
	if len(pos) == 2 {
		if pos[0] != "check" {
			return usagef("dns: unexpected argument %q", pos[1])
		}
		return cmdDNSCheck(ctx, e, configPath, pos[1:])
	}
	domain := store.Normalize(pos[0])
	return withStore(ctx, configPath, func(cfg *config.Config, s *store.Store) error {
		d, err := s.Domain(ctx, domain)
		if err != nil {
			return explain(err, domain)
		}
		return printDNSRecords(e.stdout, cfg, d)
	})
}

// stsPolicy is the MTA-STS policy every served domain publishes: mail goes to this
// server's hostname only.
func stsPolicy(cfg *config.Config) webadmin.STSPolicy {
	return webadmin.STSPolicy{Mode: cfg.MTASTS.Mode, MX: []string{cfg.Hostname}, MaxAge: time.Duration(cfg.MTASTS.MaxAge)}
}

// printDNSRecords prints, as a zone-file fragment, the records domain needs for mail to
// reach this server and for other servers to trust mail from it. It creates the
// domain's DKIM keys if they do not exist yet (the queue signs with them).
func printDNSRecords(w io.Writer, cfg *config.Config, d *store.Domain) error {
	return printDNSPlan(w, cfg, d.Name, turnPort(cfg, d))
}

// turnPort is the port of the embedded TURN server clients of d's accounts call
// through, 0 if they do not (chatmail §2.5): the host's address record must reach it.
func turnPort(cfg *config.Config, d *store.Domain) int {
	p, err := coi.StoredProfile(d)
	if err != nil || !p.Chatmail || p.TURN.Mode != profile.TURNEmbedded || cfg.Chat.TURNListen == "" {
		return 0
	}
	_, port, err := net.SplitHostPort(cfg.Chat.TURNListen)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}
