// Package dnstest runs an in-process DNS server on 127.0.0.1 for tests, answering from
// zone-file lines the test adds, over UDP and TCP on one random port.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// maxChase bounds CNAME chasing so that a looping test zone cannot hang a query.
const maxChase = 8

// Server is an authoritative-style DNS server for everything the test adds. Unknown
// names get NXDOMAIN; known names (or names with known names below them) asked for a
// type they lack get NOERROR with an empty answer.
type Server struct {
	t    testing.TB
	addr string

	mu       sync.Mutex
	rrs      map[string][]dns.RR // by lower-case FQDN owner
	servfail map[string]bool
	secure   map[string]bool
	queries  int
}

// New starts a server and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:        t,
		rrs:      make(map[string][]dns.RR),
		servfail: make(map[string]bool),
		secure:   make(map[string]bool),
	}
	pc, ln := listenPair(t)
	s.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)},
		{Listener: ln, Handler: dns.HandlerFunc(s.serve)},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				t.Errorf("dnstest: serve: %v", err)
				close(started)
			}
		}()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

// listenPair opens UDP and TCP sockets on the same free port of 127.0.0.1, so that a
// client falling back to TCP after a truncated UDP answer finds the same server.
func listenPair(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: listen udp: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		lastErr = err
		_ = pc.Close()
	}
	t.Fatalf("dnstest: listen tcp on the udp port: %v", lastErr)
	return nil, nil
}

// Addr returns the server's "127.0.0.1:port", for dnsx.New.
func (s *Server) Addr() string { return s.addr }

// Add adds records given as zone-file lines, e.g. "a.test. 300 IN MX 10 mx.a.test.";
// several lines may be passed at once. Names without a trailing dot are taken as
// absolute. A syntax error fails the test.
func (s *Server) Add(rr string) {
	s.t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(rr), ".", "dnstest")
	s.mu.Lock()
	defer s.mu.Unlock()
	for r, ok := zp.Next(); ok; r, ok = zp.Next() {
		name := strings.ToLower(r.Header().Name)
		s.rrs[name] = append(s.rrs[name], r)
	}
	if err := zp.Err(); err != nil {
		s.t.Fatalf("dnstest: add %q: %v", rr, err)
	}
}

// Remove deletes every record of type rrtype (dns.TypeTXT, …) at name; dns.TypeANY
// deletes them all, so that the name no longer exists.
func (s *Server) Remove(name string, rrtype uint16) {
	key := strings.ToLower(dns.Fqdn(name))
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.rrs[key][:0]
	for _, r := range s.rrs[key] {
		if rrtype != dns.TypeANY && r.Header().Rrtype != rrtype {
			kept = append(kept, r)
		}
	}
	if len(kept) == 0 {
		delete(s.rrs, key)
	} else {
		s.rrs[key] = kept
	}
}

// ServFail makes every query for name answer SERVFAIL, to test temporary failures.
func (s *Server) ServFail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[strings.ToLower(dns.Fqdn(name))] = true
}

// Secure makes answers for name carry the AD bit, as a validating resolver would for
// DNSSEC-signed data.
func (s *Server) Secure(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secure[strings.ToLower(dns.Fqdn(name))] = true
}

// Queries returns how many queries the server has answered so far.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.answer(req)
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(opt.UDPSize(), false)
	}
	// Like a real server, cut UDP answers to the client's buffer and set TC so the
	// client retries over TCP.
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.t.Logf("dnstest: write answer: %v", err)
	}
}

func (s *Server) answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries++
	if s.servfail[name] {
		resp.Rcode = dns.RcodeServerFailure
		return resp
	}
	resp.AuthenticatedData = s.secure[name]
	if !s.exists(name) {
		resp.Rcode = dns.RcodeNameError
		return resp
	}
	for range maxChase {
		var cname *dns.CNAME
		matched := false
		for _, r := range s.rrs[name] {
			if r.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
				resp.Answer = append(resp.Answer, dns.Copy(r))
				matched = true
			} else if c, ok := r.(*dns.CNAME); ok {
				cname = c
			}
		}
		if matched || cname == nil {
			break
		}
		// Like a recursive resolver, follow the alias within what we know; a
		// dangling target still answers with the CNAME alone.
		resp.Answer = append(resp.Answer, dns.Copy(cname))
		name = strings.ToLower(cname.Target)
	}
	return resp
}

// exists reports whether name has records or is an empty non-terminal (a name with
// records somewhere below it), which must answer NOERROR rather than NXDOMAIN.
func (s *Server) exists(name string) bool {
	if len(s.rrs[name]) > 0 {
		return true
	}
	suffix := "." + name
	for n := range s.rrs {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}
