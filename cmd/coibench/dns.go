package main

import (
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// stubDNS answers the started server's DNS lookups on 127.0.0.1, so that SPF and DMARC
// checks of benchmark mail cost what a nearby caching resolver would, not a timeout on
// a machine without DNS. It knows the sender domain's SPF and DMARC records (so the
// checks run their full course and pass), and whatever records a benchmark adds (the
// chat benchmark's DKIM key of its stand-in peer), and answers NXDOMAIN for every
// other name.
type stubDNS struct {
	addr string
	srv  *dns.Server
}

// stubRecords are the zone the stub serves, as zone-file lines.
var stubRecords = []string{
	`sender.example. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
	`_dmarc.sender.example. 300 IN TXT "v=DMARC1; p=none"`,
	`sender.example. 300 IN MX 10 mx.sender.example.`,
	`mx.sender.example. 300 IN A 127.0.0.1`,
}

// startStubDNS serves stubRecords and extra.
func startStubDNS(extra []dns.RR) (*stubDNS, error) {
	zone := map[string][]dns.RR{}
	for _, line := range stubRecords {
		rr, err := dns.NewRR(line)
		if err != nil {
			return nil, fmt.Errorf("stub dns record %q: %w", line, err)
		}
		name := strings.ToLower(rr.Header().Name)
		zone[name] = append(zone[name], rr)
	}
	for _, rr := range extra {
		name := strings.ToLower(rr.Header().Name)
		zone[name] = append(zone[name], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("stub dns: %w", err)
	}
	s := &stubDNS{addr: pc.LocalAddr().String()}
	s.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetReply(req)
		resp.Authoritative = true
		if len(req.Question) == 1 {
			q := req.Question[0]
			rrs, ok := zone[strings.ToLower(q.Name)]
			if !ok {
				resp.Rcode = dns.RcodeNameError
			}
			for _, rr := range rrs {
				if rr.Header().Rrtype == q.Qtype {
					resp.Answer = append(resp.Answer, rr)
				}
			}
		} else {
			resp.Rcode = dns.RcodeFormatError
		}
		_ = w.WriteMsg(resp) // a lost answer is retried by the client
	})}
	started := make(chan struct{})
	s.srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = s.srv.ActivateAndServe() }()
	<-started
	return s, nil
}

func (s *stubDNS) Close() { _ = s.srv.Shutdown() }
