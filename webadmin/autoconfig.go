package webadmin

import (
	"context"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// Client autoconfiguration: what a mail client that knows only an address asks for to
// find the servers. Three dialects, one description (Autoconfig):
//   - Mozilla's (Thunderbird, Delta Chat, K-9/Thunderbird for Android): GET
//     /mail/config-v1.1.xml on autoconfig.<domain>, or
//     /.well-known/autoconfig/mail/config-v1.1.xml on <domain>;
//   - Microsoft's Autodiscover, the plain-old-XML flavour Outlook and many mobile
//     clients POST to /autodiscover/autodiscover.xml;
//   - an Apple configuration profile (.mobileconfig) that iOS and macOS install,
//     downloaded from /apple.mobileconfig?email=<address>.
//
// Passwords are never part of an answer; the login is the full address.

// Autoconfig is the server's mail service as clients should be set up for it.
type Autoconfig struct {
	// Hostname is the name clients connect to (the certificate's).
	Hostname string
	// Ports of the listeners; 0 means not offered.
	IMAPS, IMAP, Submissions, Submission int
	// ALPN443 is the HTTPS port when it carries IMAP and submission too (by ALPN,
	// chat.alpn443), 0 otherwise: Mozilla's answer lists it last for both, as the way
	// through networks that let nothing else out (chatmail §5).
	ALPN443 int
	// Serves reports whether domain is one of the server's mail domains: nothing is
	// said about other domains.
	Serves func(ctx context.Context, domain string) (bool, error)
}

// Paths of the autoconfiguration answers.
const (
	MozillaPath        = "/mail/config-v1.1.xml"
	MozillaWellKnown   = "/.well-known/autoconfig/mail/config-v1.1.xml"
	AutodiscoverPath   = "/autodiscover/autodiscover.xml"
	MobileconfigPath   = "/apple.mobileconfig"
	maxAutodiscoverReq = 64 << 10
)

// routes adds the autoconfiguration handlers to mux.
func (a *Autoconfig) routes(mux *http.ServeMux, log *slog.Logger) {
	mux.Handle("GET "+MozillaPath, a.mozilla(log))
	mux.Handle("GET "+MozillaWellKnown, a.mozilla(log))
	// Outlook capitalizes the path; ServeMux is case-sensitive.
	mux.Handle("POST "+AutodiscoverPath, a.autodiscover(log))
	mux.Handle("POST /Autodiscover/Autodiscover.xml", a.autodiscover(log))
	mux.Handle("GET "+MobileconfigPath, a.mobileconfig(log))
}

// requestHost is the request's host name, lower case, without port and trailing dot.
func requestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// domainOf picks the mail domain a request is about: the address's, if the client
// gave one, else the host's (autoconfig.<domain> or <domain>), and checks that the
// server serves it. It answers the request itself (404, 503) when it returns "".
func (a *Autoconfig) domainOf(w http.ResponseWriter, r *http.Request, address string, log *slog.Logger) string {
	var domain string
	if address != "" {
		addr, err := mail.ParseAddress(address)
		if err != nil || !strings.Contains(addr.Address, "@") {
			http.Error(w, "not a mail address", http.StatusBadRequest)
			return ""
		}
		domain = addr.Address[strings.LastIndexByte(addr.Address, '@')+1:]
	} else {
		domain = requestHost(r)
		for _, p := range []string{"autoconfig.", "autodiscover."} {
			domain = strings.TrimPrefix(domain, p)
		}
	}
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	if domain == "" || a.Serves == nil {
		http.NotFound(w, r)
		return ""
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	ok, err := a.Serves(ctx, domain)
	if err != nil {
		log.Warn("autoconfig: look up domain", "domain", domain, "err", err)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return ""
	}
	if !ok {
		http.NotFound(w, r)
		return ""
	}
	return domain
}

// mozillaConfig is Mozilla's clientConfig format, version 1.1.
type mozillaConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID          string          `xml:"id,attr"`
		Domain      string          `xml:"domain"`
		DisplayName string          `xml:"displayName"`
		Short       string          `xml:"displayShortName"`
		Incoming    []mozillaServer `xml:"incomingServer"`
		Outgoing    []mozillaServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type mozillaServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"` // SSL, STARTTLS
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
}

func (a *Autoconfig) mozilla(log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		domain := a.domainOf(w, r, r.URL.Query().Get("emailaddress"), log)
		if domain == "" {
			return
		}
		var c mozillaConfig
		c.Version = "1.1"
		c.Provider.ID, c.Provider.Domain, c.Provider.DisplayName, c.Provider.Short = domain, domain, domain+" mail", domain
		server := func(typ string, port int, socket string) mozillaServer {
			return mozillaServer{Type: typ, Hostname: a.Hostname, Port: port, SocketType: socket,
				Username: "%EMAILADDRESS%", Authentication: "password-cleartext"}
		}
		// Implicit TLS first: clients take the first entry they can use.
		if a.IMAPS != 0 {
			c.Provider.Incoming = append(c.Provider.Incoming, server("imap", a.IMAPS, "SSL"))
		}
		if a.IMAP != 0 {
			c.Provider.Incoming = append(c.Provider.Incoming, server("imap", a.IMAP, "STARTTLS"))
		}
		if a.Submissions != 0 {
			c.Provider.Outgoing = append(c.Provider.Outgoing, server("smtp", a.Submissions, "SSL"))
		}
		if a.Submission != 0 {
			c.Provider.Outgoing = append(c.Provider.Outgoing, server("smtp", a.Submission, "STARTTLS"))
		}
		if a.ALPN443 != 0 {
			c.Provider.Incoming = append(c.Provider.Incoming, server("imap", a.ALPN443, "SSL"))
			c.Provider.Outgoing = append(c.Provider.Outgoing, server("smtp", a.ALPN443, "SSL"))
		}
		writeXML(w, "application/xml", c)
	}
}

// Autodiscover (POX): the request and response schemas Outlook uses.
const (
	autodiscoverRequestNS  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	autodiscoverResponseNS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	autodiscoverOutlookNS  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

type autodiscoverRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

type autodiscoverResponse struct {
	XMLName  xml.Name `xml:"Autodiscover"`
	XMLNS    string   `xml:"xmlns,attr"`
	Response struct {
		XMLNS   string `xml:"xmlns,attr"`
		Account struct {
			AccountType string                 `xml:"AccountType"`
			Action      string                 `xml:"Action"`
			Protocol    []autodiscoverProtocol `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

type autodiscoverProtocol struct {
	Type      string `xml:"Type"` // IMAP, SMTP
	Server    string `xml:"Server"`
	Port      int    `xml:"Port"`
	LoginName string `xml:"LoginName"`
	SPA       string `xml:"SPA"` // off: plain password over TLS
	SSL       string `xml:"SSL"` // on
	// Encryption says which TLS: "SSL" for implicit TLS, "TLS" for STARTTLS.
	Encryption   string `xml:"Encryption"`
	AuthRequired string `xml:"AuthRequired"`
}

func (a *Autoconfig) autodiscover(log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req autodiscoverRequest
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAutodiscoverReq+1))
		if err != nil || len(body) > maxAutodiscoverReq || xml.Unmarshal(body, &req) != nil || req.Request.EMailAddress == "" {
			http.Error(w, "expected an Autodiscover request naming an EMailAddress", http.StatusBadRequest)
			return
		}
		address := strings.TrimSpace(req.Request.EMailAddress)
		domain := a.domainOf(w, r, address, log)
		if domain == "" {
			return
		}
		var resp autodiscoverResponse
		resp.XMLNS, resp.Response.XMLNS = autodiscoverResponseNS, autodiscoverOutlookNS
		resp.Response.Account.AccountType, resp.Response.Account.Action = "email", "settings"
		proto := func(typ string, port int, enc string) autodiscoverProtocol {
			return autodiscoverProtocol{Type: typ, Server: a.Hostname, Port: port, LoginName: address,
				SPA: "off", SSL: "on", Encryption: enc, AuthRequired: "on"}
		}
		if a.IMAPS != 0 {
			resp.Response.Account.Protocol = append(resp.Response.Account.Protocol, proto("IMAP", a.IMAPS, "SSL"))
		} else if a.IMAP != 0 {
			resp.Response.Account.Protocol = append(resp.Response.Account.Protocol, proto("IMAP", a.IMAP, "TLS"))
		}
		if a.Submissions != 0 {
			resp.Response.Account.Protocol = append(resp.Response.Account.Protocol, proto("SMTP", a.Submissions, "SSL"))
		} else if a.Submission != 0 {
			resp.Response.Account.Protocol = append(resp.Response.Account.Protocol, proto("SMTP", a.Submission, "TLS"))
		}
		writeXML(w, "application/xml", resp)
	}
}

func writeXML(w http.ResponseWriter, contentType string, v any) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType+"; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(out)
	_, _ = io.WriteString(w, "\n")
}

// mobileconfig answers an Apple configuration profile with one mail account
// (payload type com.apple.mail.managed) for ?email=. It is unsigned: iOS shows it as
// "not verified" and asks for the password on install.
func (a *Autoconfig) mobileconfig(log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		address := r.URL.Query().Get("email")
		if address == "" {
			http.Error(w, "add ?email=<your address>", http.StatusBadRequest)
			return
		}
		domain := a.domainOf(w, r, address, log)
		if domain == "" {
			return
		}
		addr, _ := mail.ParseAddress(address) // domainOf parsed it already
		email := addr.Address
		inPort, inSSL := a.IMAPS, true
		if inPort == 0 {
			inPort, inSSL = a.IMAP, false
		}
		outPort, outSSL := a.Submissions, true
		if outPort == 0 {
			outPort, outSSL = a.Submission, false
		}
		// Stable identifiers: installing the profile again replaces the account
		// rather than adding a second.
		ident := "org.coibox.mail." + reverse(domain)
		var p plist
		p.begin()
		p.key("PayloadContent")
		p.raw("<array>")
		p.begin()
		p.str("EmailAccountDescription", email)
		p.str("EmailAccountName", email)
		p.str("EmailAccountType", "EmailTypeIMAP")
		p.str("EmailAddress", email)
		p.str("IncomingMailServerAuthentication", "EmailAuthPassword")
		p.str("IncomingMailServerHostName", a.Hostname)
		p.integer("IncomingMailServerPortNumber", inPort)
		p.boolean("IncomingMailServerUseSSL", inSSL)
		p.str("IncomingMailServerUsername", email)
		p.str("OutgoingMailServerAuthentication", "EmailAuthPassword")
		p.str("OutgoingMailServerHostName", a.Hostname)
		p.integer("OutgoingMailServerPortNumber", outPort)
		p.boolean("OutgoingMailServerUseSSL", outSSL)
		p.str("OutgoingMailServerUsername", email)
		p.boolean("OutgoingPasswordSameAsIncomingPassword", true)
		p.str("PayloadDescription", "Mail account "+email)
		p.str("PayloadDisplayName", email)
		p.str("PayloadIdentifier", ident+".account."+email)
		p.str("PayloadType", "com.apple.mail.managed")
		p.str("PayloadUUID", stableUUID("account "+email))
		p.integer("PayloadVersion", 1)
		p.end()
		p.raw("</array>")
		p.str("PayloadDescription", "Sets up "+email+" on "+a.Hostname)
		p.str("PayloadDisplayName", domain+" mail")
		p.str("PayloadIdentifier", ident+"."+email)
		p.boolean("PayloadRemovalDisallowed", false)
		p.str("PayloadType", "Configuration")
		p.str("PayloadUUID", stableUUID("profile "+email))
		p.integer("PayloadVersion", 1)
		p.end()
		w.Header().Set("Content-Type", "application/x-apple-aspen-config; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+domain+`.mobileconfig"`)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = io.WriteString(w, xml.Header+
			`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`+"\n"+
			`<plist version="1.0">`+"\n"+p.b.String()+"</plist>\n")
	}
}

// plist writes an XML property list; every text goes through xml.EscapeText.
type plist struct{ b strings.Builder }

func (p *plist) raw(s string) { p.b.WriteString(s + "\n") }
func (p *plist) begin()       { p.raw("<dict>") }
func (p *plist) end()         { p.raw("</dict>") }
func (p *plist) key(k string) { p.raw("<key>" + escape(k) + "</key>") }
func (p *plist) str(k, v string) {
	p.key(k)
	p.raw("<string>" + escape(v) + "</string>")
}
func (p *plist) integer(k string, v int) {
	p.key(k)
	p.raw("<integer>" + strconv.Itoa(v) + "</integer>")
}
func (p *plist) boolean(k string, v bool) {
	p.key(k)
	if v {
		p.raw("<true/>")
	} else {
		p.raw("<false/>")
	}
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// reverse turns example.org into org.example, the form of profile identifiers.
func reverse(domain string) string {
	labels := strings.Split(domain, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return strings.Join(labels, ".")
}

// stableUUID derives a version-4-shaped UUID from s, the same for the same s.
func stableUUID(s string) string {
	h := sha256.Sum256([]byte("coibox mobileconfig " + s))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
