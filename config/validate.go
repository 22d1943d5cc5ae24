package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Validate normalizes c (host names lower-cased, trailing dots dropped), fills the
// defaults that derive from other keys (tls.acme_cache, limits.imap_literal_size) and
// checks every value. Load does this already; Validate is for a Config changed in code,
// such as a test's copy of Local with other ports.
func (c *Config) Validate() error { return errors.Join(c.check()...) }

// check returns one error per bad key, each starting with the key, in file order.
func (c *Config) check() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	oneOf := func(key, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(key, "%q is not one of %s", v, quoteList(allowed))
	}
	positive := func(key string, n int) {
		if n < 1 {
			bad(key, "%d must be at least 1", n)
		}
	}
	positiveDur := func(key string, d Duration) {
		if d <= 0 {
			bad(key, "%q must be longer than zero", d)
		}
	}

	if c.Hostname == "" {
		bad("hostname", "is empty; set it to this server's DNS name, e.g. \"mail.example.org\"")
	} else {
		orig := c.Hostname
		c.Hostname = normalizeName(c.Hostname)
		if msg := checkDNSName(c.Hostname); msg != "" {
			bad("hostname", "%q %s", orig, msg)
		}
	}
	if c.DataDir == "" {
		bad("data_dir", "is empty; set it to the directory for coibox's data, e.g. \"/var/lib/coibox\"")
	}
	oneOf("log_format", c.LogFormat, "text", "json")
	oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")

	// Listeners.
	type bound struct{ key, host, port string }
	var used []bound
	for _, l := range []struct {
		key, addr, port string
	}{
		{"listen.smtp", c.Listen.SMTP, "25"},
		{"listen.submission", c.Listen.Submission, "587"},
		{"listen.submissions", c.Listen.Submissions, "465"},
		{"listen.imap", c.Listen.IMAP, "143"},
		{"listen.imaps", c.Listen.IMAPS, "993"},
		{"listen.http", c.Listen.HTTP, "80"},
		{"listen.https", c.Listen.HTTPS, "443"},
	} {
		if l.addr == "" {
			continue
		}
		host, port, msg := checkAddr(l.addr, l.port, false)
		if msg != "" {
			bad(l.key, "%s", msg)
			continue
		}
		for _, u := range used {
			if u.port == port && (u.host == host || isWildcard(u.host) || isWildcard(host)) {
				bad(l.key, "%q uses the same port as listen.%s", l.addr, strings.TrimPrefix(u.key, "listen."))
			}
		}
		used = append(used, bound{l.key, host, port})
	}
	for _, p := range c.Listen.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("listen.trusted_proxies", "%q is neither an IP address nor a CIDR network", p)
			}
		}
	}

	// TLS.
	oneOf("tls.mode", c.TLS.Mode, TLSSelfSigned, TLSACME, TLSFiles)
	if c.TLS.Mode == TLSFiles {
		if c.TLS.CertFile == "" {
			bad("tls.cert_file", "must be set when tls.mode is %q", TLSFiles)
		}
		if c.TLS.KeyFile == "" {
			bad("tls.key_file", "must be set when tls.mode is %q", TLSFiles)
		}
	}
	for i, n := range c.TLS.ExtraNames {
		c.TLS.ExtraNames[i] = normalizeName(n)
		if msg := checkDNSName(c.TLS.ExtraNames[i]); msg != "" {
			bad("tls.extra_names", "%q %s", n, msg)
		}
	}
	if c.TLS.Mode == TLSACME {
		// ACME CAs only issue for names in public DNS, and autocert refuses
		// single-label names before even asking.
		for _, n := range append([]string{c.Hostname}, c.TLS.ExtraNames...) {
			if n != "" && !strings.Contains(n, ".") {
				key := "hostname"
				if n != c.Hostname {
					key = "tls.extra_names"
				}
				bad(key, "%q cannot get a certificate from an ACME CA; use a public DNS name, or tls.mode %q", n, TLSSelfSigned)
			}
		}
		if u, err := url.Parse(c.TLS.ACMEDirectory); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("tls.acme_directory", "%q is not an https URL", c.TLS.ACMEDirectory)
		}
	}
	if c.TLS.ACMECache == "" && c.DataDir != "" {
		c.TLS.ACMECache = filepath.Join(c.DataDir, "acme")
	}

	// DNS.
	if c.DNS.Resolver != "" {
		if _, _, msg := checkAddr(c.DNS.Resolver, "53", true); msg != "" {
			bad("dns.resolver", "%s", msg)
		}
	}

	// Limits.
	l := &c.Limits
	if l.MessageSize <= 0 {
		bad("limits.message_size", "%q must be larger than zero", l.MessageSize)
	}
	positive("limits.recipients", l.Recipients)
	positive("limits.smtp_connections", l.SMTPConnections)
	positive("limits.smtp_connections_per_ip", l.SMTPConnectionsPerIP)
	if l.IPv4Prefix < 8 || l.IPv4Prefix > 32 {
		bad("limits.ipv4_prefix", "%d is not a prefix length from 8 to 32", l.IPv4Prefix)
	}
	if l.IPv6Prefix < 16 || l.IPv6Prefix > 128 {
		bad("limits.ipv6_prefix", "%d is not a prefix length from 16 to 128", l.IPv6Prefix)
	}
	// A handshake takes a round trip or two; minutes only help the sockets that never
	// finish one to hold their connection slots.
	if d := time.Duration(l.TLSHandshakeTimeout); d < time.Second || d > 5*time.Minute {
		bad("limits.tls_handshake_timeout", "%q is outside 1s to 5m", l.TLSHandshakeTimeout)
	}
	positiveDur("limits.smtp_command_timeout", l.SMTPCommandTimeout)
	positiveDur("limits.smtp_data_timeout", l.SMTPDataTimeout)
	positive("limits.imap_connections", l.IMAPConnections)
	positive("limits.imap_connections_per_ip", l.IMAPConnectionsPerIP)
	positive("limits.imap_connections_per_account", l.IMAPConnectionsPerAccount)
	positiveDur("limits.imap_idle_timeout", l.IMAPIdleTimeout)
	if l.IMAPLineLength < 8192 {
		bad("limits.imap_line_length", "%d is too small; IMAP clients may send command lines of 8192 bytes (RFC 7162)", l.IMAPLineLength)
	}
	if l.IMAPLiteralSize < 0 {
		bad("limits.imap_literal_size", "%q cannot be negative", l.IMAPLiteralSize)
	} else if l.IMAPLiteralSize == 0 {
		l.IMAPLiteralSize = l.MessageSize
	}
	positive("limits.auth_failures_per_ip", l.AuthFailuresPerIP)
	positiveDur("limits.auth_failure_window", l.AuthFailureWindow)
	positive("limits.password_min_length", l.PasswordMinLength)
	if l.Quota < 0 {
		bad("limits.quota", "%q cannot be negative; \"0\" means unlimited", l.Quota)
	}

	// Queue.
	q := &c.Queue
	positiveDur("queue.lifetime", q.Lifetime)
	positiveDur("queue.min_retry", q.MinRetry)
	positiveDur("queue.max_retry", q.MaxRetry)
	if q.MaxRetry > 0 && q.MaxRetry < q.MinRetry {
		bad("queue.max_retry", "%q is shorter than queue.min_retry %q", q.MaxRetry, q.MinRetry)
	}
	if q.DelayNotice < 0 {
		bad("queue.delay_notice", "%q cannot be negative; \"0s\" sends no delay notices", q.DelayNotice)
	} else if q.DelayNotice > 0 && q.DelayNotice >= q.Lifetime {
		bad("queue.delay_notice", "%q is not shorter than queue.lifetime %q, so no delay notice would ever be sent; use \"0s\" to send none", q.DelayNotice, q.Lifetime)
	}
	if q.RemotePort < 1 || q.RemotePort > 65535 {
		bad("queue.remote_port", "%d is not a TCP port (1-65535)", q.RemotePort)
	}
	if q.Smarthost != "" {
		if _, _, msg := checkAddr(q.Smarthost, "587", false); msg != "" {
			bad("queue.smarthost", "%s", msg)
		} else if h, _, _ := net.SplitHostPort(q.Smarthost); h == "" {
			bad("queue.smarthost", "%q has no host name", q.Smarthost)
		}
	}
	oneOf("queue.smarthost_tls", q.SmarthostTLS, SmarthostSTARTTLS, SmarthostTLS, SmarthostNone)
	switch {
	case q.SmarthostUser != "" && q.Smarthost == "":
		bad("queue.smarthost_user", "is set, but queue.smarthost is empty")
	case q.SmarthostUser != "" && q.SmarthostPassword == "":
		bad("queue.smarthost_password", "must be set when queue.smarthost_user is")
	case q.SmarthostUser == "" && q.SmarthostPassword != "":
		bad("queue.smarthost_user", "must be set when queue.smarthost_password is")
	case q.SmarthostUser != "" && q.SmarthostTLS == SmarthostNone:
		bad("queue.smarthost_tls", "%q would send the smarthost password unencrypted; use %q or %q", SmarthostNone, SmarthostSTARTTLS, SmarthostTLS)
	}

	if q.SourceIP != "" {
		if ip, err := netip.ParseAddr(q.SourceIP); err != nil || ip.Zone() != "" {
			bad("queue.source_ip", "%q is not an IP address", q.SourceIP)
		} else if ip.IsUnspecified() {
			bad("queue.source_ip", "%q is no particular address; use \"\" to let the system choose", q.SourceIP)
		} else {
			q.SourceIP = ip.String()
		}
	}

	// MTA-STS.
	oneOf("mta_sts.mode", c.MTASTS.Mode, MTASTSEnforce, MTASTSTesting, MTASTSNone)
	// RFC 8461 3.2: max_age is whole seconds up to 31557600 (about a year). Less than
	// a day makes senders fetch the policy over and over for no gain.
	if a := time.Duration(c.MTASTS.MaxAge); a < 24*time.Hour || a > 31557600*time.Second {
		bad("mta_sts.max_age", "%q is outside 24h to 8766h (RFC 8461 allows at most a year; a day is a sensible minimum)", c.MTASTS.MaxAge)
	} else if a%time.Second != 0 {
		bad("mta_sts.max_age", "%q is not a whole number of seconds", c.MTASTS.MaxAge)
	}

	positive("store.group_commit_max", c.Store.GroupCommitMax)

	if r := c.COI.MailboxRoot; r == "" || strings.Contains(r, "/") || strings.EqualFold(r, "INBOX") || strings.ContainsAny(r, "*%\x00\r\n") {
		bad("coi.mailbox_root", "%q must be one mailbox name, not INBOX, without \"/\"", r)
	}
	positive("webpush.subscription_limit", c.WebPush.SubscriptionLimit)
	positiveDur("webpush.validation_window", c.WebPush.ValidationWindow)
	positiveDur("webpush.timeout", c.WebPush.Timeout)
	positiveDur("webpush.ttl", c.WebPush.TTL)
	if p := c.WebPush.HTTPSProxy; p != "" {
		if u, err := url.Parse(p); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("webpush.https_proxy", "%q is not an http(s) URL", p)
		}
	}
	positive("chat.accounts_per_network", c.Chat.AccountsPerNetwork)
	if p := c.Chat.MXDelivPort; p < 1 || p > 65535 {
		bad("chat.mxdeliv_port", "%d is not a TCP port", p)
	}
	if c.Chat.TURNListen != "" {
		if _, _, msg := checkAddr(c.Chat.TURNListen, "3478", false); msg != "" {
			bad("chat.turn_listen", "%s", msg)
		}
	}
	if u, err := url.Parse(c.Chat.PushNotifyURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("chat.push_notify_url", "%q is not an http(s) URL", c.Chat.PushNotifyURL)
	}
	if v := c.Chat.AppVersions; v != "" && (!json.Valid([]byte(v)) || strings.ContainsAny(v, "\r\n")) {
		bad("chat.appversions", "is not one line of JSON")
	}
	if c.Chat.TURNPublicIP != "" {
		if ip, err := netip.ParseAddr(c.Chat.TURNPublicIP); err != nil || !ip.Is4() {
			bad("chat.turn_public_ip", "%q is not an IPv4 address (the TURN relay is IPv4 only)", c.Chat.TURNPublicIP)
		}
	}
	return errs
}

// checkAddr checks a "host:port" address and returns its parts, or a message saying
// what is wrong, with a corrected example built from defPort where one can be guessed.
// If ipOnly, the host must be an IP address.
func checkAddr(addr, defPort string, ipOnly bool) (host, port, msg string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		switch {
		case isDigits(addr):
			return "", "", fmt.Sprintf("%q is not host:port (try \":%s\")", addr, addr)
		case strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "["):
			if _, perr := netip.ParseAddr(addr); perr == nil {
				return "", "", fmt.Sprintf("%q is not host:port (try \"[%s]:%s\")", addr, addr, defPort)
			}
		case !strings.Contains(addr, ":"):
			return "", "", fmt.Sprintf("%q is not host:port (try \"%s:%s\")", addr, addr, defPort)
		}
		return "", "", fmt.Sprintf("%q is not host:port", addr)
	}
	n, err := strconv.Atoi(port)
	switch {
	case port == "":
		return "", "", fmt.Sprintf("%q has no port (try \"%s:%s\")", addr, host, defPort)
	case err != nil || !isDigits(port):
		return "", "", fmt.Sprintf("%q: port %q is not a number", addr, port)
	case n < 1 || n > 65535:
		return "", "", fmt.Sprintf("%q: port %s is out of range (1-65535)", addr, port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.String(), port, ""
	}
	if ipOnly {
		if host == "" {
			return "", "", fmt.Sprintf("%q has no IP address (e.g. \"127.0.0.1:%s\")", addr, port)
		}
		return "", "", fmt.Sprintf("%q: host %q must be an IP address, since names cannot be looked up before the resolver is known", addr, host)
	}
	if host != "" {
		if m := checkDNSName(normalizeName(host)); m != "" {
			return "", "", fmt.Sprintf("%q: host %q %s", addr, host, m)
		}
	}
	return strings.ToLower(host), port, ""
}

func isWildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// normalizeName lower-cases a DNS name and drops a trailing dot, the forms in which
// names are compared everywhere else (SNI, EHLO, certificates).
func normalizeName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// checkDNSName returns "" if s is a usable host name in normalized form, else the rest of
// a sentence that starts with the quoted name.
func checkDNSName(s string) string {
	if _, err := netip.ParseAddr(s); err == nil {
		return "is an IP address, not a DNS name"
	}
	if s == "" || len(s) > 253 {
		return "is not a valid DNS name: it must be 1 to 253 characters long"
	}
	// A leading "_" marks a name for self-signed test and LAN setups, which chatmail
	// relays and Delta Chat treat specially (no chain check, names still checked);
	// "_" is allowed there and nowhere else.
	for i, label := range strings.Split(s, ".") {
		if i == 0 && len(label) > 1 && label[0] == '_' {
			label = label[1:]
		}
		switch {
		case label == "":
			return "is not a valid DNS name: it has an empty label (two dots in a row, or a leading dot)"
		case len(label) > 63:
			return fmt.Sprintf("is not a valid DNS name: label %q is longer than 63 characters", label)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Sprintf("is not a valid DNS name: label %q starts or ends with a hyphen", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				if r > 127 {
					return "is not a valid DNS name: write internationalized names in their ASCII form (xn--...)"
				}
				return fmt.Sprintf("is not a valid DNS name: label %q may contain only letters, digits and hyphens", label)
			}
		}
	}
	if isDigits(s[strings.LastIndex(s, ".")+1:]) {
		return "is not a valid DNS name: the last label is all digits"
	}
	return ""
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
