package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/dkim"
	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/queue/mtasts"
	"github.com/coibox/coibox/webadmin"
	"github.com/miekg/dns"
)

// dnsTestConfig is a server mx.example.org on 192.0.2.10 with ACME certificates from
// Let's Encrypt, so that every kind of record (CAA and PTR included) is in the plan.
func dnsTestConfig() *config.Config {
	cfg := config.Default()
	cfg.Hostname = "mx.example.org"
	cfg.Listen.SMTP = "192.0.2.10:25"
	cfg.Listen.IMAP = "" // off: its SRV record says "not offered"
	cfg.TLS.Mode = config.TLSACME
	return cfg
}

func dnsTestPlan(t *testing.T, cfg *config.Config) *dnsPlan {
	t.Helper()
	keys, err := dkim.NewKeyStore(t.TempDir()).Ensure("example.org")
	if err != nil {
		t.Fatal(err)
	}
	p, err := newDNSPlan(cfg, "example.org", keys, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// planRecords returns the plan's printed records, advice lines left out.
func planRecords(t *testing.T, p *dnsPlan) []string {
	t.Helper()
	var b bytes.Buffer
	p.print(&b)
	var recs []string
	for line := range strings.SplitSeq(b.String(), "\n") {
		if line != "" && !strings.HasPrefix(line, ";") {
			recs = append(recs, line)
		}
	}
	return recs
}

func TestDNSPlanPrint(t *testing.T) {
	cfg := dnsTestConfig()
	p := dnsTestPlan(t, cfg)
	var b bytes.Buffer
	p.print(&b)
	out := b.String()

	// Everything, comments included, must be a valid zone-file fragment.
	zp := dns.NewZoneParser(strings.NewReader(out), ".", "plan")
	n := 0
	for _, ok := zp.Next(); ok; _, ok = zp.Next() {
		n++
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("output is not a zone file: %v\n%s", err, out)
	}
	if n != len(planRecords(t, p)) {
		t.Errorf("zone parser read %d records, the plan printed %d", n, len(planRecords(t, p)))
	}

	pol := webadmin.STSPolicy{Mode: "enforce", MX: []string{"mx.example.org"}, MaxAge: 28 * 24 * time.Hour}
	for _, want := range []string{
		"mx.example.org. 3600 IN A 192.0.2.10",
		"example.org. 3600 IN MX 10 mx.example.org.",
		`re:^[a-z0-9-]+\._domainkey\.example\.org\. 3600 IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/=]+"$`,
		`re:^[a-z0-9-]+\._domainkey\.example\.org\. 3600 IN TXT "v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+" "[A-Za-z0-9+/=]+"`,
		`_mta-sts.example.org. 3600 IN TXT "v=STSv1; id=` + pol.ID() + `"`,
		"mta-sts.example.org. 3600 IN CNAME mx.example.org.",
		`example.org. 3600 IN TXT "v=spf1 mx -all"`,
		`_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s"`,
		`_smtp._tls.example.org. 3600 IN TXT "v=TLSRPTv1; rua=mailto:tls-reports@example.org"`,
		"_submission._tcp.example.org. 3600 IN SRV 0 1 587 mx.example.org.",
		"_submissions._tcp.example.org. 3600 IN SRV 0 1 465 mx.example.org.",
		"_imap._tcp.example.org. 3600 IN SRV 0 0 0 .",
		"_imaps._tcp.example.org. 3600 IN SRV 0 1 993 mx.example.org.",
		"autoconfig.example.org. 3600 IN CNAME mx.example.org.",
		"autodiscover.example.org. 3600 IN CNAME mx.example.org.",
		`example.org. 3600 IN CAA 0 issue "letsencrypt.org"`,
		"; 10.2.0.192.in-addr.arpa. 3600 IN PTR mx.example.org.",
	} {
		if re, ok := strings.CutPrefix(want, "re:"); ok {
			if !regexp.MustCompile("(?m)" + re).MatchString(out) {
				t.Errorf("no line matching %s in\n%s", re, out)
			}
		} else if !strings.Contains(out, want+"\n") {
			t.Errorf("no line %q in\n%s", want, out)
		}
	}
	// Required records come before recommended ones.
	if strings.Index(out, ";; REQUIRED") > strings.Index(out, ";; RECOMMENDED") {
		t.Errorf("recommended records first:\n%s", out)
	}

	t.Run("without a known address", func(t *testing.T) {
		cfg := dnsTestConfig()
		cfg.Listen.SMTP = ":25"
		cfg.TLS.Mode = config.TLSSelfSigned
		cfg.Queue.Smarthost = "relay.example.net:587"
		var b bytes.Buffer
		dnsTestPlan(t, cfg).print(&b)
		out := b.String()
		for _, want := range []string{
			"; mx.example.org. 3600 IN A <this server's public IPv4 address>",
			"smarthost relay.example.net",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in\n%s", want, out)
			}
		}
		for _, not := range []string{" CAA ", " PTR "} {
			if strings.Contains(out, not) {
				t.Errorf("%q printed without ACME or a known address:\n%s", not, out)
			}
		}
	})
	t.Run("source address", func(t *testing.T) {
		cfg := dnsTestConfig()
		cfg.Queue.SourceIP = "2001:db8::25"
		var b bytes.Buffer
		dnsTestPlan(t, cfg).print(&b)
		for _, want := range []string{`"v=spf1 mx ip6:2001:db8::25 -all"`, "mx.example.org. 3600 IN AAAA 2001:db8::25"} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("no %q in\n%s", want, b.String())
			}
		}
	})
}

func TestDNSCheck(t *testing.T) {
	cfg := dnsTestConfig()
	plan := dnsTestPlan(t, cfg)
	served, err := mtasts.Parse([]byte(webadmin.STSPolicy{Mode: "enforce", MX: []string{"mx.example.org"}, MaxAge: 28 * 24 * time.Hour}.Text()))
	if err != nil {
		t.Fatal(err)
	}
	fetchOK := func(context.Context, string) (*mtasts.Policy, error) { return served, nil }

	tests := []struct {
		name string
		// change edits the complete zone.
		change  func(z *dnstest.Server)
		fetch   policyFetcher
		want    map[string]string // item title prefix → status; others must be OK
		wantBad int
	}{
		{name: "everything published"},
		{
			name:    "no MX",
			change:  func(z *dnstest.Server) { z.Remove("example.org", dns.TypeMX) },
			want:    map[string]string{"MX example.org": statusMissing, "SPF": statusWrong},
			wantBad: 1,
		},
		{
			name: "MX elsewhere",
			change: func(z *dnstest.Server) {
				z.Remove("example.org", dns.TypeMX)
				z.Add("example.org. 300 IN MX 10 mail.other.example.")
			},
			want:    map[string]string{"MX example.org": statusWrong, "SPF": statusWrong},
			wantBad: 1,
		},
		{
			name:    "no address",
			change:  func(z *dnstest.Server) { z.Remove("mx.example.org", dns.TypeA) },
			want:    map[string]string{"A/AAAA": statusMissing, "SPF": statusWrong},
			wantBad: 1,
		},
		{
			name: "old DKIM key",
			change: func(z *dnstest.Server) {
				name := strings.TrimSuffix(strings.Fields(dkimLine(t, plan, "k=ed25519"))[0], ".")
				z.Remove(name, dns.TypeTXT)
				z.Add(name + ` 300 IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="`)
			},
			want:    map[string]string{"DKIM TXT ed": statusWrong},
			wantBad: 1,
		},
		{
			name: "DKIM record respaced, without v=",
			change: func(z *dnstest.Server) {
				line := dkimLine(t, plan, "k=ed25519")
				name := strings.TrimSuffix(strings.Fields(line)[0], ".")
				p := regexp.MustCompile(`p=([A-Za-z0-9+/=]+)`).FindStringSubmatch(line)[1]
				z.Remove(name, dns.TypeTXT)
				z.Add(fmt.Sprintf(`%s 300 IN TXT "k=ed25519 ;p=%s"`, name, p))
			},
		},
		{
			name:    "no DKIM record",
			change:  func(z *dnstest.Server) { z.Remove(strings.Fields(dkimLine(t, plan, "k=rsa"))[0], dns.TypeTXT) },
			want:    map[string]string{"DKIM TXT rsa": statusMissing},
			wantBad: 1,
		},
		{
			name: "stale MTA-STS id",
			change: func(z *dnstest.Server) {
				z.Remove("_mta-sts.example.org", dns.TypeTXT)
				z.Add(`_mta-sts.example.org. 300 IN TXT "v=STSv1; id=20240101"`)
			},
			want:    map[string]string{"MTA-STS TXT": statusWrong},
			wantBad: 1,
		},
		{
			name: "MTA-STS host by address",
			change: func(z *dnstest.Server) {
				z.Remove("mta-sts.example.org", dns.TypeCNAME)
				z.Add("mta-sts.example.org. 300 IN A 192.0.2.10")
			},
			wantBad: 0,
		},
		{
			name: "MTA-STS host elsewhere",
			change: func(z *dnstest.Server) {
				z.Remove("mta-sts.example.org", dns.TypeCNAME)
				z.Add("mta-sts.example.org. 300 IN A 198.51.100.1")
			},
			want:    map[string]string{"CNAME mta-sts": statusWrong},
			wantBad: 1,
		},
		{
			name: "policy not served",
			fetch: func(context.Context, string) (*mtasts.Policy, error) {
				return nil, errors.New("HTTP status 404 Not Found")
			},
			want:    map[string]string{"MTA-STS policy": statusWrong},
			wantBad: 1,
		},
		{
			name: "another policy served",
			fetch: func(context.Context, string) (*mtasts.Policy, error) {
				return &mtasts.Policy{Mode: mtasts.Testing, MX: []string{"mx.example.org"}, MaxAge: time.Hour}, nil
			},
			want:    map[string]string{"MTA-STS policy": statusWrong},
			wantBad: 1,
		},
		{
			name: "SPF leaves the server out",
			change: func(z *dnstest.Server) {
				z.Remove("example.org", dns.TypeTXT)
				z.Add(`example.org. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 -all"`)
			},
			want: map[string]string{"SPF": statusWrong},
		},
		{
			name: "two SPF records",
			change: func(z *dnstest.Server) {
				z.Add(`example.org. 300 IN TXT "v=spf1 a -all"`)
			},
			want: map[string]string{"SPF": statusWrong},
		},
		{
			name: "no DMARC, no TLS-RPT",
			change: func(z *dnstest.Server) {
				z.Remove("_dmarc.example.org", dns.TypeTXT)
				z.Remove("_smtp._tls.example.org", dns.TypeTXT)
			},
			want: map[string]string{"DMARC": statusMissing, "TLS-RPT": statusMissing},
		},
		{
			name: "DMARC without policy",
			change: func(z *dnstest.Server) {
				z.Remove("_dmarc.example.org", dns.TypeTXT)
				z.Add(`_dmarc.example.org. 300 IN TXT "v=DMARC1; rua=mailto:x@example.org"`)
			},
			want: map[string]string{"DMARC": statusWrong},
		},
		{
			name: "SRV on another port, imap offered though off",
			change: func(z *dnstest.Server) {
				z.Remove("_submission._tcp.example.org", dns.TypeSRV)
				z.Add("_submission._tcp.example.org. 300 IN SRV 0 1 2525 mx.example.org.")
				z.Remove("_imap._tcp.example.org", dns.TypeSRV)
				z.Add("_imap._tcp.example.org. 300 IN SRV 0 1 143 mx.example.org.")
			},
			want: map[string]string{"SRV _submission._tcp": statusWrong, "SRV _imap._tcp": statusWrong},
		},
		{
			name: "no autoconfig, no CAA, no PTR",
			change: func(z *dnstest.Server) {
				z.Remove("autoconfig.example.org", dns.TypeANY)
				z.Remove("example.org", dns.TypeCAA)
				z.Remove("10.2.0.192.in-addr.arpa", dns.TypeANY)
			},
			want: map[string]string{"CNAME autoconfig": statusMissing, "CAA": statusMissing, "PTR": statusMissing},
		},
		{
			name: "CAA that excludes Let's Encrypt",
			change: func(z *dnstest.Server) {
				z.Remove("example.org", dns.TypeCAA)
				z.Add(`example.org. 300 IN CAA 0 issue "pki.goog"`)
			},
			want:    map[string]string{"CAA": statusWrong},
			wantBad: 1,
		},
		{
			name: "CAA with account binding",
			change: func(z *dnstest.Server) {
				z.Remove("example.org", dns.TypeCAA)
				z.Add(`example.org. 300 IN CAA 0 issue "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1"`)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := dnstest.New(t)
			for _, rr := range planRecords(t, plan) {
				z.Add(rr)
			}
			z.Add("10.2.0.192.in-addr.arpa. 300 IN PTR mx.example.org.")
			if tt.change != nil {
				tt.change(z)
			}
			fetch := tt.fetch
			if fetch == nil {
				fetch = fetchOK
			}
			var out bytes.Buffer
			bad := plan.check(t.Context(), &out, dnsx.New(z.Addr()), fetch)
			got := checkStatuses(out.String())
			if len(got) != len(plan.items) {
				t.Fatalf("%d items reported, the plan has %d:\n%s", len(got), len(plan.items), out.String())
			}
			for title, status := range got {
				want := statusOK
				for prefix, w := range tt.want {
					if strings.HasPrefix(title, prefix) {
						want = w
					}
				}
				if status != want {
					t.Errorf("%s: %s, want %s", title, status, want)
				}
			}
			if bad != tt.wantBad {
				t.Errorf("%d required items failed, want %d", bad, tt.wantBad)
			}
			if t.Failed() {
				t.Logf("report:\n%s", out.String())
			}
		})
	}
}

// dkimLine returns the plan's DKIM record line containing algo.
func dkimLine(t *testing.T, p *dnsPlan, algo string) string {
	t.Helper()
	for _, l := range planRecords(t, p) {
		if strings.Contains(l, "._domainkey.") && strings.Contains(l, algo) {
			return l
		}
	}
	t.Fatalf("no DKIM record with %s", algo)
	return ""
}

// checkStatuses reads a check report into item title → status.
func checkStatuses(report string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(report, "\n") {
		status, title, ok := strings.Cut(line, " ")
		if !ok || (status != statusOK && status != statusMissing && status != statusWrong) {
			continue
		}
		out[strings.TrimSpace(title)] = status
	}
	return out
}
