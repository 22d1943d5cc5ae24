package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coibox/coibox/coi"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/store"
)

// Defaults of quickstart on a server (run as root, as install.sh does) and for a user
// trying it out in a directory of their own.
const (
	systemConfig  = "/etc/coibox/coibox.toml"
	systemDataDir = "/var/lib/coibox"
	userConfig    = "coibox.toml"
	userDataDir   = "coibox-data"
	// port25Probe is a mail server that answers on port 25 from anywhere port 25 is
	// not blocked: the question is the network's, not that server's.
	port25Probe = "gmail-smtp-in.l.google.com:25"
)

// quickstartOptions are quickstart's flags.
type quickstartOptions struct {
	hostname, dataDir, tlsMode, acmeEmail, resolver, probe string
	noChecks                                               bool
}

// cmdQuickstart is `coibox quickstart you@example.org`: from nothing to a configured
// server in one command. It writes the config (unless one exists: it is never
// overwritten), serves the address's domain with DKIM keys, creates the account with
// a generated password printed once, prints the DNS records and checks what it can
// from this host. Running it again changes nothing that exists.
func cmdQuickstart(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("quickstart")
	fs.StringVar(&configPath, "config", configPath, "config file")
	var o quickstartOptions
	fs.StringVar(&o.hostname, "hostname", "", "the server's DNS name (default mail.DOMAIN)")
	fs.StringVar(&o.dataDir, "data-dir", "", "data directory")
	fs.StringVar(&o.tlsMode, "tls", config.TLSACME, "where certificates come from: acme or selfsigned")
	fs.StringVar(&o.acmeEmail, "acme-email", "", "contact address for the ACME CA (default: ADDRESS)")
	fs.StringVar(&o.resolver, "resolver", "", "DNS resolver host:port (dns.resolver; default: the system's)")
	fs.StringVar(&o.probe, "port25-probe", port25Probe, "mail server host:port the outbound port 25 check connects to")
	fs.BoolVar(&o.noChecks, "no-checks", false, "skip the DNS and network checks")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	addr, err := store.CheckAddress(pos[0])
	if err != nil {
		return usagef("quickstart: %v", err)
	}
	_, domain, _ := store.SplitAddress(addr)
	if o.tlsMode != config.TLSACME && o.tlsMode != config.TLSSelfSigned {
		return usagef("quickstart: --tls %q is not acme or selfsigned", o.tlsMode)
	}
	root := os.Geteuid() == 0
	if configPath == "" {
		configPath = userConfig
		if root {
			configPath = systemConfig
		}
	}

	cfg, err := quickstartConfig(e, configPath, domain, addr, root, o)
	if err != nil {
		return err
	}
	out := e.stdout
	err = withNewStore(ctx, cfg, configPath, func(cfg *config.Config, s *store.Store) error {
		fmt.Fprintf(out, "data directory: %s\n", cfg.DataDir)
		if d, err := s.Domain(ctx, domain); err == nil {
			fmt.Fprintf(out, "domain %s: already served\n\n", domain)
			if err := printDNSRecords(out, cfg, d); err != nil {
				return err
			}
		} else if err := domainAdd(ctx, e, cfg, s, domain, false); err != nil {
			return err
		}
		fmt.Fprintln(out)
		if err := quickstartAccount(ctx, out, s, addr); err != nil {
			return err
		}
		u, err := adminSetupURL(ctx, s, cfg.DataDir, adminBase(cfg))
		if err != nil {
			return err
		}
		if u != "" {
			fmt.Fprintf(out, "\nadmin page: %s\n(the link sets the admin password and works once; quickstart run again makes a new one)\n", u)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !o.noChecks {
		fmt.Fprintln(out, "\nChecks from this host:")
		quickstartChecks(ctx, out, cfg, o.probe)
	}
	fmt.Fprintf(out, `
Next:
  1. Publish the DNS records above (coibox --config %[1]s dns check %[2]s tells what is
     still missing).
  2. Start the server: systemctl enable --now coibox (install.sh does this), or
     coibox --config %[1]s serve
  3. Set up a mail client or Delta Chat with %[3]s and the password above; clients
     that support autoconfiguration need nothing else.
`, configPath, domain, addr)
	return nil
}

// quickstartConfig loads the config at path, or writes a new one there when there is
// none: the hostname, the data directory and TLS, every other key at its default.
func quickstartConfig(e *env, path, domain, addr string, root bool, o quickstartOptions) (*config.Config, error) {
	if _, err := os.Stat(path); err == nil {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(e.stdout, "config: keeping %s (quickstart never overwrites a config)\n", path)
		return cfg, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("quickstart: %w", err)
	}
	host := o.hostname
	if host == "" {
		host = "mail." + domain
	}
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = userDataDir
		if root {
			dataDir = systemDataDir
		}
	}
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by coibox quickstart on %s. Every key not set here keeps its\n", time.Now().UTC().Format(time.DateOnly))
	b.WriteString("# default; README.md lists them all.\n")
	fmt.Fprintf(&b, "hostname = %s\ndata_dir = %s\n\n[tls]\nmode = %s\n", strconv.Quote(host), strconv.Quote(dataDir), strconv.Quote(o.tlsMode))
	if o.tlsMode == config.TLSACME {
		email := o.acmeEmail
		if email == "" {
			email = addr
		}
		fmt.Fprintf(&b, "acme_email = %s\n", strconv.Quote(email))
	}
	if o.resolver != "" {
		fmt.Fprintf(&b, "\n[dns]\nresolver = %s\n", strconv.Quote(o.resolver))
	}
	// Check before writing: a bad --hostname must not leave a config behind.
	cfg, err := config.Parse(path, []byte(b.String()))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("quickstart: %w", err)
	}
	// 0640: no secrets in it, but no reason for others to read it either.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("quickstart: write config: %w", err)
	}
	if _, err := io.WriteString(f, b.String()); err != nil {
		f.Close()
		return nil, fmt.Errorf("quickstart: write config: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("quickstart: write config: %w", err)
	}
	fmt.Fprintf(e.stdout, "config: wrote %s (hostname %s, tls.mode %s)\n", path, host, o.tlsMode)
	return cfg, nil
}

// quickstartAccount creates the account with a generated password, printed once; an
// existing account keeps its password.
func quickstartAccount(ctx context.Context, out io.Writer, s *store.Store, addr string) error {
	if _, err := s.Account(ctx, addr); err == nil {
		fmt.Fprintf(out, "account %s: already exists, password unchanged (coibox account passwd %s sets a new one)\n", addr, addr)
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, domain, _ := store.SplitAddress(addr)
	d, err := s.Domain(ctx, domain)
	if err != nil {
		return err
	}
	p, err := coi.StoredProfile(d)
	if err != nil {
		return err
	}
	password, err := generatePassword(20)
	if err != nil {
		return err
	}
	if _, err := s.CreateAccount(ctx, coi.NewAccount(p, addr, password)); err != nil {
		return explain(err, addr)
	}
	fmt.Fprintf(out, "added account %s\npassword: %s\n(shown only now: write it down)\n", addr, password)
	return nil
}

// quickstartChecks reports what can be checked from this host before DNS is
// published: whether the hostname points here, reverse DNS, the resolver, and
// whether outbound port 25 is open. Each line says what to do about a problem; none
// of them stops quickstart.
func quickstartChecks(ctx context.Context, out io.Writer, cfg *config.Config, probe string) {
	report := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark = "WARN"
		}
		fmt.Fprintf(out, "  %s %s\n", mark, fmt.Sprintf(format, args...))
	}
	r := dnsx.New(cfg.DNS.Resolver)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	ips, err := r.LookupIP(cctx, cfg.Hostname)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		report(true, "the resolver (%s) answers", resolverName(cfg))
		report(false, "%s has no address record yet: publish the A/AAAA record above", cfg.Hostname)
	case err != nil:
		report(false, "the resolver (%s) fails: %v; set dns.resolver to a working one", resolverName(cfg), err)
	default:
		report(true, "the resolver (%s) answers", resolverName(cfg))
		local := localAddrs()
		var here []netip.Addr
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip); ok && slices.Contains(local, a.Unmap()) {
				here = append(here, a.Unmap())
			}
		}
		if len(here) == 0 {
			report(false, "%s resolves to %v, none of this host's addresses (%v): behind NAT forward ports 25, 465, 587, 993 and 443 here; else fix the A/AAAA record",
				cfg.Hostname, ipStrings(ips), local)
		} else {
			report(true, "%s resolves to this host (%v)", cfg.Hostname, here)
		}
		for _, ip := range ips {
			names, err := r.LookupAddr(cctx, ip.String())
			matched := slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(strings.TrimSuffix(n, "."), cfg.Hostname) })
			if err != nil || !matched {
				report(false, "reverse DNS of %s is %v, not %s: ask the provider of the address to set its PTR record (many servers refuse mail without it)",
					ip, names, cfg.Hostname)
			} else {
				report(true, "reverse DNS of %s is %s", ip, cfg.Hostname)
			}
		}
	}

	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(cctx, "tcp", probe)
	greeted := false
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		greeted = strings.HasPrefix(line, "220")
		c.Close()
	}
	if greeted {
		report(true, "outbound port 25 is open (%s answered)", probe)
	} else {
		report(false, "outbound port 25 to %s does not connect (%v): home and many cloud connections block it; "+
			"send through your provider's relay with queue.smarthost (README: configuration keys)", probe, errOr(err, "no SMTP greeting"))
	}
}

func resolverName(cfg *config.Config) string {
	if cfg.DNS.Resolver == "" {
		return "the system's"
	}
	return cfg.DNS.Resolver
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// localAddrs are this host's interface addresses.
func localAddrs() []netip.Addr {
	var out []netip.Addr
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}
