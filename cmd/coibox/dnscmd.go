package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/dkim"
	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/queue/mtasts"
	"github.com/coibox/coibox/store"
	"github.com/coibox/coibox/webadmin"
	"github.com/miekg/dns"
)

// zoneTTL is the TTL of the records the DNS plan prints: an hour lets a mistake be
// corrected the same day, and none of these records is looked up often enough for a
// longer one to matter.
const zoneTTL = 3600

// cmdDNSCheck is `coibox dns check DOMAIN` (cmdDNS passes the arguments after
// "check"): it looks up every record newDNSPlan lists
// through the configured resolver and reports each as OK, MISSING or WRONG. It fails
// when a required record is missing or wrong.
func cmdDNSCheck(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("dns check")
	fs.StringVar(&configPath, "config", configPath, "config file")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	domain := strings.TrimSuffix(store.Normalize(pos[0]), ".")
	return withStore(ctx, configPath, func(cfg *config.Config, s *store.Store) error {
		dom, err := s.Domain(ctx, domain)
		if err != nil {
			return explain(err, domain)
		}
		// A check changes nothing, not even the key directory.
		keys, err := dkim.NewKeyStore(filepath.Join(cfg.DataDir, dkimDir)).Load(domain)
		if err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return err
		}
		hostKeys, err := dkim.NewKeyStore(filepath.Join(cfg.DataDir, dkimDir)).Load(cfg.Hostname)
		if err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return err
		}
		plan, err := newDNSPlan(cfg, domain, keys, turnPort(cfg, dom), hostKeys)
		if err != nil {
			return err
		}
		r := dnsx.New(cfg.DNS.Resolver)
		fetch := mtasts.New(mtasts.Options{Resolver: r}).Fetch
		if n := plan.check(ctx, e.stdout, r, fetch); n > 0 {
			return fmt.Errorf("%d required DNS record(s) of %s missing or wrong", n, domain)
		}
		return nil
	})
}

// printDNSPlan prints every record domain needs as a zone-file fragment, creating the
// domain's DKIM keys if it has none yet (the records are useless without them, and the
// queue signs with them).
func printDNSPlan(w io.Writer, cfg *config.Config, domain string, turnPort int) error {
	ks := dkim.NewKeyStore(filepath.Join(cfg.DataDir, dkimDir))
	keys, err := ks.Ensure(domain)
	if err != nil {
		return err
	}
	// serve makes the hostname's keys too, to sign its bounces.
	hostKeys, err := ks.Ensure(cfg.Hostname)
	if err != nil {
		return err
	}
	plan, err := newDNSPlan(cfg, domain, keys, turnPort, hostKeys)
	if err != nil {
		return err
	}
	plan.print(w)
	return nil
}

// need says how much a record matters: only required ones make `dns check` fail.
type need int

const (
	required need = iota
	recommended
)

func (n need) String() string {
	if n == required {
		return "required"
	}
	return "recommended"
}

// Outcomes of checking one item.
const (
	statusOK      = "OK"
	statusMissing = "MISSING"
	statusWrong   = "WRONG"
)

// finding is what the check of one item found.
type finding struct {
	status string
	found  string // what DNS has, for WRONG (and as a note for OK)
	note   string // why it matters or what to do
	// blocking makes a recommended item count as required: it is not merely absent
	// but stands in the way (CAA records that exclude our CA).
	blocking bool
}

func pass(found string) finding { return finding{status: statusOK, found: found} }

func absent(note string) finding { return finding{status: statusMissing, note: note} }

func mismatch(found, note string) finding {
	return finding{status: statusWrong, found: found, note: note}
}

// dnsLookup is the part of dnsx.Resolver the check uses.
type dnsLookup interface {
	LookupMX(ctx context.Context, domain string) ([]*net.MX, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupCNAME(ctx context.Context, name string) (string, error)
	LookupSRV(ctx context.Context, name string) ([]*net.SRV, error)
	LookupCAA(ctx context.Context, name string) ([]dnsx.CAA, error)
}

// policyFetcher downloads a domain's MTA-STS policy (mtasts.Client.Fetch).
type policyFetcher func(ctx context.Context, domain string) (*mtasts.Policy, error)

// checkEnv is what an item's check may use.
type checkEnv struct {
	r     dnsLookup
	spf   spf.DNSResolver
	fetch policyFetcher
	// hostIPs are the addresses hostname has in DNS, looked up once for the items
	// that compare against them.
	hostIPs []net.IP
}

// dnsItem is one thing to publish: the zone lines to print and how to check them.
type dnsItem struct {
	title   string   // what it is, e.g. "MX a.example" (the check's report)
	need    need     // only required items fail the check
	comment []string // printed above the lines
	lines   []string // zone-file lines; an entry starting with ";" is advice, not a record
	want    string   // the expected value in the check's report
	check   func(ctx context.Context, c *checkEnv) finding
}

// dnsPlan is every record a domain should publish.
type dnsPlan struct {
	domain, host string
	knownIPs     []netip.Addr // addresses this server is configured to use
	items        []dnsItem
}

// fqdn returns name with one trailing dot.
func fqdn(name string) string { return strings.TrimSuffix(name, ".") + "." }

// zoneLine renders a record as a zone-file line.
func zoneLine(name, typ, value string) string {
	return fmt.Sprintf("%s %d IN %s %s", fqdn(name), zoneTTL, typ, value)
}

// quoteTXT renders a TXT value as zone-file strings of at most 255 bytes each.
func quoteTXT(v string) string {
	var parts []string
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	for len(v) > 255 {
		parts = append(parts, `"`+esc.Replace(v[:255])+`"`)
		v = v[255:]
	}
	return strings.Join(append(parts, `"`+esc.Replace(v)+`"`), " ")
}

// configuredIPs are the addresses the config pins: a specific listen.smtp address (what
// other servers connect to) and queue.source_ip (what we send from). Loopback ones are
// kept: they are what tests and the local profile publish in their own DNS.
func configuredIPs(cfg *config.Config) []netip.Addr {
	var ips []netip.Addr
	add := func(s string) {
		if ip, err := netip.ParseAddr(s); err == nil && !ip.IsUnspecified() && !slices.Contains(ips, ip) {
			ips = append(ips, ip.Unmap())
		}
	}
	if h, _, err := net.SplitHostPort(cfg.Listen.SMTP); err == nil {
		add(h)
	}
	add(cfg.Queue.SourceIP)
	return ips
}

// newDNSPlan lists the records domain needs (chatmail.md §12). keys may be nil when the
// server has none for the domain, which the check reports. turnPort, when not 0, is
// the embedded TURN server's port that the domain's clients call through.
//
// hostKeys are the DKIM keys of the hostname itself (nil: none, or the hostname is
// the domain): bounces come from MAILER-DAEMON@<hostname>, and chatmail servers take
// them only with a DKIM signature aligned with that name (chatmail §6.3, §8).
func newDNSPlan(cfg *config.Config, domain string, keys *dkim.DomainKeys, turnPort int, hostKeys *dkim.DomainKeys) (*dnsPlan, error) {
	p := &dnsPlan{domain: domain, host: cfg.Hostname, knownIPs: configuredIPs(cfg)}
	d, h := domain, cfg.Hostname

	// The host's addresses.
	addrItem := dnsItem{title: "A/AAAA " + h, need: required,
		comment: []string{"The mail server's addresses: other servers and clients connect here."}}
	if turnPort > 0 {
		addrItem.comment = append(addrItem.comment, fmt.Sprintf("Calls: Delta Chat reaches the TURN server at %s, UDP and TCP port %d (relays use IPv4): let them through the firewall.", h, turnPort))
	}
	if len(p.knownIPs) == 0 {
		addrItem.lines = []string{
			"; " + zoneLine(h, "A", "<this server's public IPv4 address>"),
			"; " + zoneLine(h, "AAAA", "<this server's public IPv6 address, if it has one>"),
		}
		addrItem.want = "an address of this server"
	} else {
		var want []string
		for _, ip := range p.knownIPs {
			typ := "A"
			if ip.Is6() {
				typ = "AAAA"
			}
			addrItem.lines = append(addrItem.lines, zoneLine(h, typ, ip.String()))
			want = append(want, ip.String())
		}
		addrItem.want = strings.Join(want, ", ")
	}
	addrItem.check = func(ctx context.Context, c *checkEnv) finding {
		if len(c.hostIPs) == 0 {
			return absent("")
		}
		got := ipStrings(c.hostIPs)
		for _, ip := range p.knownIPs {
			if !slices.Contains(got, ip.String()) {
				return mismatch(strings.Join(got, ", "), "the configured address "+ip.String()+" is not among them")
			}
		}
		return pass(strings.Join(got, ", "))
	}
	p.items = append(p.items, addrItem)

	// MX.
	p.items = append(p.items, dnsItem{title: "MX " + d, need: required,
		comment: []string{"Mail for " + d + " goes to " + h + "."},
		lines:   []string{zoneLine(d, "MX", "10 "+fqdn(h))},
		want:    "10 " + fqdn(h),
		check: func(ctx context.Context, c *checkEnv) finding {
			mxs, err := c.r.LookupMX(ctx, d)
			if errors.Is(err, dnsx.ErrNullMX) {
				return mismatch("0 . (null MX: the domain accepts no mail)", "")
			}
			if err != nil && !dnsx.IsNotFound(err) {
				return lookupFailed(err)
			}
			if len(mxs) == 0 {
				return absent("without an MX record senders try the address of " + d + " itself")
			}
			var got []string
			has := false
			for _, mx := range mxs {
				got = append(got, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
				has = has || strings.EqualFold(fqdn(mx.Host), fqdn(h))
			}
			if !has {
				return mismatch(strings.Join(got, ", "), "no MX record names "+h)
			}
			return pass(strings.Join(got, ", "))
		}})

	// DKIM.
	if keys == nil {
		p.items = append(p.items, dnsItem{title: "DKIM keys of " + d, need: required,
			want: "DKIM keys in the data directory",
			check: func(context.Context, *checkEnv) finding {
				return absent("this server has no DKIM keys for " + d + "; `coibox dns " + d + "` creates them")
			}})
	} else {
		recs, err := dkim.Records(d, keys)
		if err != nil {
			return nil, err
		}
		algos := []string{keys.Ed25519.Algorithm(), keys.RSA.Algorithm()}
		for i, rec := range recs {
			comment := []string{"DKIM key (" + algos[i] + ") of the signatures on mail from " + d + "."}
			if i == 0 {
				comment = append([]string{"Both DKIM selectors: receivers check whichever algorithm they support."}, comment...)
			}
			p.items = append(p.items, dnsItem{title: "DKIM TXT " + strings.TrimSuffix(rec.Name, "."), need: required,
				comment: comment,
				lines:   []string{rec.ZoneLine()},
				want:    rec.Value,
				check:   checkDKIM(rec),
			})
		}
	}
	if hostKeys != nil && !strings.EqualFold(h, d) {
		recs, err := dkim.Records(h, hostKeys)
		if err != nil {
			return nil, err
		}
		for i, rec := range recs {
			var comment []string
			if i == 0 {
				comment = []string{"DKIM keys of " + h + " itself: bounces come from MAILER-DAEMON@" + h + ", and chatmail servers accept them only signed by it."}
			}
			p.items = append(p.items, dnsItem{title: "DKIM TXT " + strings.TrimSuffix(rec.Name, "."), need: recommended,
				comment: comment,
				lines:   []string{rec.ZoneLine()},
				want:    rec.Value,
				check:   checkDKIM(rec),
			})
		}
	}

	// MTA-STS.
	pol := stsPolicy(cfg)
	stsName := "_mta-sts." + d
	p.items = append(p.items, dnsItem{title: "MTA-STS TXT " + stsName, need: required,
		comment: []string{
			"MTA-STS: senders deliver to " + d + " only over TLS with a valid certificate for " + h + " (mode " + pol.Mode + ").",
			"The id is a hash of the policy: it changes when the policy does (hostname, mta_sts.mode, mta_sts.max_age).",
		},
		lines: []string{zoneLine(stsName, "TXT", quoteTXT(pol.TXT()))},
		want:  pol.TXT(),
		check: func(ctx context.Context, c *checkEnv) finding {
			txts, err := c.r.LookupTXT(ctx, stsName)
			if err != nil && !dnsx.IsNotFound(err) {
				return lookupFailed(err)
			}
			var sts []string
			for _, t := range txts {
				if strings.HasPrefix(t, "v=STSv1") {
					sts = append(sts, t)
				}
			}
			switch {
			case len(sts) == 0:
				return absent("")
			case len(sts) > 1:
				return mismatch(strings.Join(sts, " | "), "more than one record: senders ignore them all (RFC 8461 3.1)")
			}
			id, err := mtasts.ParseRecord(sts[0])
			if err != nil {
				return mismatch(sts[0], err.Error())
			}
			if id != pol.ID() {
				return mismatch(sts[0], "the id is not that of the policy served; senders that have the old one keep using it")
			}
			return pass(sts[0])
		}})
	p.items = append(p.items, aliasItem("mta-sts."+d, h, required,
		"The policy host: coibox serves https://mta-sts."+d+webadmin.STSPolicyPath+" (its certificate must cover this name)."))
	expected, err := mtasts.Parse([]byte(pol.Text()))
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy from the config: %w", err)
	}
	p.items = append(p.items, dnsItem{title: "MTA-STS policy https://mta-sts." + d + webadmin.STSPolicyPath, need: required,
		want: strings.ReplaceAll(strings.TrimSpace(pol.Text()), "\n", "; "),
		check: func(ctx context.Context, c *checkEnv) finding {
			got, err := c.fetch(ctx, d)
			if err != nil {
				return mismatch(err.Error(), "senders cannot fetch the policy")
			}
			if got.String() != expected.String() {
				return mismatch(strings.ReplaceAll(strings.TrimSpace(got.String()), "\r\n", "; "), "another policy is served there")
			}
			return pass("")
		}})

	// SPF.
	spfValue, spfNote := spfRecord(cfg)
	p.items = append(p.items, dnsItem{title: "SPF TXT " + d, need: recommended,
		comment: append([]string{"SPF: the hosts that send mail from " + d + "."}, spfNote...),
		lines:   []string{zoneLine(d, "TXT", quoteTXT(spfValue))},
		want:    spfValue,
		check:   checkSPF(d, h, p.knownIPs),
	})

	// DMARC.
	dmarcName := "_dmarc." + d
	const dmarcValue = "v=DMARC1; p=reject; adkim=s; aspf=s"
	p.items = append(p.items, dnsItem{title: "DMARC TXT " + dmarcName, need: recommended,
		comment: []string{"DMARC: receivers refuse mail that claims to be from " + d + " without a matching DKIM signature or SPF pass.",
			"coibox signs all its mail, so p=reject costs nothing; use p=none while other systems still send as " + d + "."},
		lines: []string{zoneLine(dmarcName, "TXT", quoteTXT(dmarcValue))},
		want:  dmarcValue,
		check: func(ctx context.Context, c *checkEnv) finding {
			recs, f := txtWithPrefix(ctx, c.r, dmarcName, "v=DMARC1")
			if f != nil {
				return *f
			}
			if _, err := dmarcPolicy(recs[0]); err != nil {
				return mismatch(recs[0], err.Error())
			}
			return pass(recs[0])
		}})

	// TLS reporting.
	rptName := "_smtp._tls." + d
	rptValue := "v=TLSRPTv1; rua=mailto:tls-reports@" + d
	p.items = append(p.items, dnsItem{title: "TLS-RPT TXT " + rptName, need: recommended,
		comment: []string{"SMTP TLS reporting: senders send daily reports of TLS failures to this address",
			"(create the account or an alias for tls-reports@" + d + ")."},
		lines: []string{zoneLine(rptName, "TXT", quoteTXT(rptValue))},
		want:  rptValue,
		check: func(ctx context.Context, c *checkEnv) finding {
			recs, f := txtWithPrefix(ctx, c.r, rptName, "v=TLSRPTv1")
			if f != nil {
				return *f
			}
			if !strings.Contains(recs[0], "rua=") {
				return mismatch(recs[0], "no rua= address for the reports")
			}
			return pass(recs[0])
		}})

	// Client autoconfiguration (RFC 6186).
	for i, s := range []struct{ service, addr string }{
		{"_submission._tcp", cfg.Listen.Submission},
		{"_submissions._tcp", cfg.Listen.Submissions},
		{"_imap._tcp", cfg.Listen.IMAP},
		{"_imaps._tcp", cfg.Listen.IMAPS},
	} {
		it := srvItem(s.service+"."+d, h, s.addr)
		if i == 0 {
			it.comment = append([]string{"Where mail clients find submission and IMAP (RFC 6186)."}, it.comment...)
		}
		p.items = append(p.items, it)
	}
	p.items = append(p.items, aliasItem("autoconfig."+d, h, recommended,
		"Autoconfiguration for Thunderbird and Delta Chat (needed when the web server of "+d+" is not coibox)."))
	p.items = append(p.items, aliasItem("autodiscover."+d, h, recommended,
		"Autodiscover for Outlook and other clients that POST to autodiscover."+d+"."))

	// CAA: only where we know which CA issues the certificates.
	if cfg.TLS.Mode == config.TLSACME {
		if issuer := caaIssuer(cfg.TLS.ACMEDirectory); issuer != "" {
			p.items = append(p.items, caaItem(d, issuer))
		}
	}

	// Reverse DNS is set where the addresses come from, not in the domain's zone.
	for _, ip := range p.knownIPs {
		p.items = append(p.items, ptrItem(ip, h))
	}
	return p, nil
}

// lookupFailed is the finding for a lookup that could not be answered.
func lookupFailed(err error) finding {
	return mismatch("lookup failed: "+err.Error(), "")
}

// txtWithPrefix returns the TXT records at name starting with prefix, or the finding to
// report when there is not exactly one.
func txtWithPrefix(ctx context.Context, r dnsLookup, name, prefix string) ([]string, *finding) {
	txts, err := r.LookupTXT(ctx, name)
	if err != nil && !dnsx.IsNotFound(err) {
		f := lookupFailed(err)
		return nil, &f
	}
	var out []string
	for _, t := range txts {
		if strings.HasPrefix(strings.ToLower(t), strings.ToLower(prefix)) {
			out = append(out, t)
		}
	}
	switch len(out) {
	case 0:
		f := absent("")
		return nil, &f
	case 1:
		return out, nil
	}
	f := mismatch(strings.Join(out, " | "), "more than one record: receivers treat that as an error")
	return nil, &f
}

// checkDKIM compares the published key record with ours by key type and key, since
// operators' DNS tools reorder and respace tags.
func checkDKIM(rec dkim.Record) func(ctx context.Context, c *checkEnv) finding {
	want := dkimTags(rec.Value)
	return func(ctx context.Context, c *checkEnv) finding {
		name := strings.TrimSuffix(rec.Name, ".")
		recs, f := txtWithPrefix(ctx, c.r, name, "v=DKIM1")
		if f != nil {
			if f.status == statusMissing {
				// A key record may leave out v=DKIM1 (RFC 6376 3.6.1).
				txts, _ := c.r.LookupTXT(ctx, name)
				for _, t := range txts {
					if strings.Contains(t, "p=") {
						recs, f = []string{t}, nil
					}
				}
			}
			if f != nil {
				return *f
			}
		}
		got := dkimTags(recs[0])
		k := got["k"]
		if k == "" {
			k = "rsa" // RFC 6376 3.6.1: the default key type
		}
		switch {
		case got["p"] == "":
			return mismatch(recs[0], "no public key (p=): the key is revoked")
		case k != want["k"] || got["p"] != want["p"]:
			return mismatch(recs[0], "another key: signatures from this server fail to verify")
		}
		return pass("")
	}
}

// dkimTags parses "v=DKIM1; k=rsa; p=…" into its tags, white space removed.
func dkimTags(v string) map[string]string {
	tags := map[string]string{}
	for f := range strings.SplitSeq(v, ";") {
		k, val, _ := strings.Cut(f, "=")
		tags[strings.ToLower(strings.TrimSpace(k))] = strings.Join(strings.Fields(val), "")
	}
	return tags
}

// dmarcPolicy returns the p= of a DMARC record, or why it is unusable.
func dmarcPolicy(rec string) (string, error) {
	for f := range strings.SplitSeq(rec, ";") {
		k, v, _ := strings.Cut(f, "=")
		if strings.TrimSpace(k) == "p" {
			switch v = strings.ToLower(strings.TrimSpace(v)); v {
			case "none", "quarantine", "reject":
				return v, nil
			}
			return "", fmt.Errorf("p=%s is not none, quarantine or reject", v)
		}
	}
	return "", errors.New("no p= policy")
}

// spfRecord is the SPF record to publish and notes on it. "mx" covers this server
// wherever the MX record points; "a" is left out because the domain's own address
// is often a web host that should not send mail in its name.
func spfRecord(cfg *config.Config) (string, []string) {
	mech := []string{"v=spf1", "mx"}
	var notes []string
	if cfg.Queue.SourceIP != "" {
		ip := netip.MustParseAddr(cfg.Queue.SourceIP)
		if ip.Is4() {
			mech = append(mech, "ip4:"+ip.String())
		} else {
			mech = append(mech, "ip6:"+ip.String())
		}
	}
	if cfg.Queue.Smarthost != "" {
		host, _, _ := net.SplitHostPort(cfg.Queue.Smarthost)
		notes = append(notes, "Mail leaves through the smarthost "+host+": add what its operator gives for SPF (an include:).")
	}
	// -all: nothing else sends as the domain. Forwarded mail fails SPF either way and
	// passes DMARC on its DKIM signature, which forwarding keeps.
	return strings.Join(append(mech, "-all"), " "), notes
}

// checkSPF evaluates the domain's SPF record for each address mail leaves from.
func checkSPF(domain, host string, known []netip.Addr) func(ctx context.Context, c *checkEnv) finding {
	return func(ctx context.Context, c *checkEnv) finding {
		recs, f := txtWithPrefix(ctx, c.r, domain, "v=spf1")
		if f != nil {
			return *f
		}
		senders := known
		if len(senders) == 0 {
			for _, ip := range c.hostIPs {
				if a, ok := netip.AddrFromSlice(ip); ok {
					senders = append(senders, a.Unmap())
				}
			}
		}
		for _, ip := range senders {
			res, err := spf.CheckHostWithSender(net.IP(ip.AsSlice()), host, "postmaster@"+domain,
				spf.WithContext(ctx), spf.WithResolver(c.spf))
			if res != spf.Pass {
				why := fmt.Sprintf("mail from %s gets SPF %s", ip, res)
				if err != nil {
					why += " (" + err.Error() + ")"
				}
				return mismatch(recs[0], why)
			}
		}
		return pass(recs[0])
	}
}

// aliasItem is a name that must lead to the host: a CNAME to it, or the same addresses.
func aliasItem(name, host string, n need, comment string) dnsItem {
	return dnsItem{title: "CNAME " + name, need: n,
		comment: []string{comment},
		lines:   []string{zoneLine(name, "CNAME", fqdn(host))},
		want:    fqdn(host),
		check: func(ctx context.Context, c *checkEnv) finding {
			target, err := c.r.LookupCNAME(ctx, name)
			if err != nil && !dnsx.IsNotFound(err) {
				return lookupFailed(err)
			}
			if target != "" {
				if strings.EqualFold(fqdn(target), fqdn(host)) {
					return pass(fqdn(target))
				}
				// A chain through another alias still works if it ends at our addresses.
			}
			ips, err := c.r.LookupIP(ctx, name)
			if err != nil && !dnsx.IsNotFound(err) {
				return lookupFailed(err)
			}
			if len(ips) == 0 {
				if target != "" {
					return mismatch("CNAME "+target, "it leads to no address")
				}
				return absent("")
			}
			got := ipStrings(ips)
			for _, ip := range ipStrings(c.hostIPs) {
				if slices.Contains(got, ip) {
					return pass(strings.Join(got, ", "))
				}
			}
			return mismatch(strings.Join(got, ", "), "these are not the addresses of "+host)
		}}
}

// srvItem is an RFC 6186 record for the listener at addr ("" when it is off).
func srvItem(name, host, addr string) dnsItem {
	it := dnsItem{title: "SRV " + name, need: recommended}
	_, port, err := net.SplitHostPort(addr)
	if addr == "" || err != nil {
		// "." says the service is decidedly not offered (RFC 6186 3.4).
		it.lines = []string{zoneLine(name, "SRV", "0 0 0 .")}
		it.want = "0 0 0 . (not offered)"
		it.check = func(ctx context.Context, c *checkEnv) finding {
			srvs, err := c.r.LookupSRV(ctx, name)
			if err != nil && !dnsx.IsNotFound(err) {
				return lookupFailed(err)
			}
			if len(srvs) > 0 {
				return mismatch(srvString(srvs), "the listener is off here")
			}
			return pass("")
		}
		return it
	}
	it.lines = []string{zoneLine(name, "SRV", "0 1 "+port+" "+fqdn(host))}
	it.want = "0 1 " + port + " " + fqdn(host)
	it.check = func(ctx context.Context, c *checkEnv) finding {
		srvs, err := c.r.LookupSRV(ctx, name)
		if err != nil && !dnsx.IsNotFound(err) {
			return lookupFailed(err)
		}
		if len(srvs) == 0 {
			return absent("")
		}
		for _, s := range srvs {
			if strings.EqualFold(fqdn(s.Target), fqdn(host)) && strconv.Itoa(int(s.Port)) == port {
				return pass(srvString(srvs))
			}
		}
		return mismatch(srvString(srvs), "")
	}
	return it
}

func srvString(srvs []*net.SRV) string {
	var out []string
	for _, s := range srvs {
		out = append(out, fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target))
	}
	return strings.Join(out, ", ")
}

// caaIssuer is the CAA issuer domain of the ACME CAs whose one we know, else "".
func caaIssuer(directory string) string {
	u, err := url.Parse(directory)
	if err != nil {
		return ""
	}
	if h := u.Hostname(); h == "letsencrypt.org" || strings.HasSuffix(h, ".letsencrypt.org") {
		return "letsencrypt.org"
	}
	return ""
}

// caaItem allows issuer to issue certificates for domain. Its absence is fine (any
// CA may issue); CAA records that leave issuer out stop ACME, hence required then.
func caaItem(domain, issuer string) dnsItem {
	value := `0 issue "` + issuer + `"`
	return dnsItem{title: "CAA " + domain, need: recommended,
		comment: []string{"CAA: only " + issuer + " (the ACME CA coibox uses) may issue certificates for " + domain + "."},
		lines:   []string{zoneLine(domain, "CAA", value)},
		want:    value,
		check: func(ctx context.Context, c *checkEnv) finding {
			recs, err := c.r.LookupCAA(ctx, domain)
			if err != nil && !dnsx.IsNotFound(err) {
				return lookupFailed(err)
			}
			var got []string
			issuers := 0
			for _, r := range recs {
				got = append(got, fmt.Sprintf("%d %s %q", r.Flag, r.Tag, r.Value))
				if r.Tag != "issue" {
					continue
				}
				issuers++
				if v, _, _ := strings.Cut(r.Value, ";"); strings.EqualFold(strings.TrimSpace(v), issuer) {
					return pass(strings.Join(got, ", "))
				}
			}
			if issuers > 0 {
				f := mismatch(strings.Join(got, ", "), issuer+" may not issue: ACME certificates will fail")
				f.blocking = true
				return f
			}
			return absent("without CAA any CA may issue; that works, but is less strict")
		}}
}

// ptrItem asks for the reverse name of ip; it is set by whoever provides the address.
func ptrItem(ip netip.Addr, host string) dnsItem {
	rev, _ := dns.ReverseAddr(ip.String()) // a valid netip.Addr always reverses
	return dnsItem{title: "PTR " + ip.String(), need: recommended,
		comment: []string{"Reverse DNS of " + ip.String() + ", set by whoever provides the address (not in this zone);",
			"some receivers distrust mail from addresses without it."},
		lines: []string{"; " + zoneLine(rev, "PTR", fqdn(host))},
		want:  fqdn(host),
		check: func(ctx context.Context, c *checkEnv) finding {
			names, err := c.r.LookupAddr(ctx, ip.String())
			if err != nil && !dnsx.IsNotFound(err) {
				return lookupFailed(err)
			}
			if len(names) == 0 {
				return absent("")
			}
			for _, n := range names {
				if strings.EqualFold(fqdn(n), fqdn(host)) {
					return pass(strings.Join(names, ", "))
				}
			}
			return mismatch(strings.Join(names, ", "), "")
		}}
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap().String())
		}
	}
	return out
}

// print writes the plan as a zone-file fragment with comments.
func (p *dnsPlan) print(w io.Writer) {
	fmt.Fprintf(w, "; DNS records for %s, whose mail server is %s (coibox).\n", p.domain, p.host)
	fmt.Fprintf(w, "; Names are absolute: each record goes into the zone it falls in. Lines starting\n")
	fmt.Fprintf(w, "; with \"; \" are advice, not records. Check the result with: coibox dns check %s\n", p.domain)
	last := need(-1)
	for _, it := range p.items {
		if len(it.lines) == 0 {
			continue
		}
		if it.need != last {
			fmt.Fprintf(w, "\n;; %s\n", strings.ToUpper(it.need.String()))
			last = it.need
		}
		if len(it.comment) > 0 {
			// Records without a comment of their own (the SRV set) stay together
			// under the one before.
			fmt.Fprintln(w)
		}
		for _, c := range it.comment {
			fmt.Fprintf(w, "; %s\n", c)
		}
		for _, l := range it.lines {
			fmt.Fprintln(w, l)
		}
	}
}

// check looks every item up and reports it, one line each with details below, and
// returns how many required items are missing or wrong.
func (p *dnsPlan) check(ctx context.Context, w io.Writer, r *dnsx.Resolver, fetch policyFetcher) int {
	c := &checkEnv{r: r, spf: r.Compat(), fetch: fetch}
	c.hostIPs, _ = r.LookupIP(ctx, p.host)
	via := "the system resolver"
	if s := r.Servers(); len(s) > 0 {
		via = strings.Join(s, ", ")
	}
	fmt.Fprintf(w, "DNS check of %s (mail server %s), asking %s\n\n", p.domain, p.host, via)
	bad, warn := 0, 0
	for _, it := range p.items {
		ictx, cancel := context.WithTimeout(ctx, 20*time.Second)
		f := it.check(ictx, c)
		cancel()
		label := it.title
		if it.need != required {
			label += " (" + it.need.String() + ")"
		}
		fmt.Fprintf(w, "%-8s %s\n", f.status, label)
		if f.status != statusOK {
			if it.want != "" {
				fmt.Fprintf(w, "         expected: %s\n", it.want)
			}
			if f.found != "" {
				fmt.Fprintf(w, "         found:    %s\n", f.found)
			}
			if f.note != "" {
				fmt.Fprintf(w, "         %s\n", f.note)
			}
			if it.need == required || f.blocking {
				bad++
			} else {
				warn++
			}
		}
	}
	fmt.Fprintln(w)
	switch {
	case bad == 0 && warn == 0:
		fmt.Fprintf(w, "All records of %s are in place.\n", p.domain)
	case bad == 0:
		fmt.Fprintf(w, "Required records are in place; %d recommended one(s) missing or wrong. `coibox dns %s` prints them all.\n", warn, p.domain)
	default:
		fmt.Fprintf(w, "%d required and %d recommended record(s) missing or wrong. `coibox dns %s` prints them all.\n", bad, warn, p.domain)
	}
	return bad
}
