package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/dkim"
	"github.com/coibox/coibox/store"
	"github.com/coibox/coibox/webadmin"
)

// dnsTTL is the TTL printed records carry: an hour lets a mistake be corrected soon
// without making resolvers ask all the time.
const dnsTTL = 3600

func cmdDNS(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("dns")
	fs.StringVar(&configPath, "config", configPath, "config file")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	domain := store.Normalize(pos[0])
	return withStore(ctx, configPath, func(cfg *config.Config, s *store.Store) error {
		if _, err := s.Domain(ctx, domain); err != nil {
			return explain(err, domain)
		}
		return printDNSRecords(e.stdout, cfg, domain)
	})
}

// stsPolicy is the MTA-STS policy every served domain publishes: mail goes to this
// server's hostname only.
func stsPolicy(cfg *config.Config) webadmin.STSPolicy {
	return webadmin.STSPolicy{Mode: cfg.MTASTS.Mode, MX: []string{cfg.Hostname}, MaxAge: time.Duration(cfg.MTASTS.MaxAge)}
}

// printDNSRecords prints, as zone-file lines, the records domain needs for mail to
// reach this server and for other servers to trust mail from it. It creates the
// domain's DKIM keys if they do not exist yet (the queue signs with them).
func printDNSRecords(w io.Writer, cfg *config.Config, domain string) error {
	keys, err := dkim.NewKeyStore(filepath.Join(cfg.DataDir, dkimDir)).Ensure(domain)
	if err != nil {
		return err
	}
	dkimRecs, err := dkim.Records(domain, keys)
	if err != nil {
		return err
	}
	host := cfg.Hostname + "."
	zone := domain + "."
	ttl := strconv.Itoa(dnsTTL)
	txt := func(name, value string) string {
		return dkim.Record{Name: name, Value: value}.ZoneLine()
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("; DNS records for %s; publish them in its zone. %s also needs A/AAAA records", domain, cfg.Hostname)
	line("; with this server's public addresses, whose reverse (PTR) names must be %s.", cfg.Hostname)
	line("")
	line("; Mail for %s goes to this server.", domain)
	line("%s %s IN MX 10 %s", zone, ttl, host)
	line("; SPF: only the MX hosts send mail from %s (add a relay here if queue.smarthost is set).", domain)
	line("%s", txt(zone, "v=spf1 mx -all"))
	line("; DMARC: receivers refuse mail that claims to be from %s without passing SPF or DKIM.", domain)
	line("%s", txt("_dmarc."+zone, "v=DMARC1; p=reject; adkim=s; aspf=s"))
	line("; DKIM: the keys outgoing mail is signed with.")
	for _, r := range dkimRecs {
		line("%s", r.ZoneLine())
	}
	if cfg.MTASTS.Mode != "" {
		p := stsPolicy(cfg)
		line("; MTA-STS (mode %s): senders must use TLS with a valid certificate; this server", p.Mode)
		line("; serves the policy at https://mta-sts.%s%s (its certificate must cover that name).", domain, webadmin.STSPolicyPath)
		line("%s", txt("_mta-sts."+zone, p.TXT()))
		line("mta-sts.%s %s IN CNAME %s", zone, ttl, host)
	}
	_, err = io.WriteString(w, b.String())
	return err
}
