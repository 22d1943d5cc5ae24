// Package config reads coibox's TOML configuration file, fills in defaults, validates it
// with messages that name the offending key, and carries the embedded local profile.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// LocalSource is the source name Resolve reports when it falls back to the embedded
// local profile.
const LocalSource = "embedded local profile"

// TLS modes accepted by tls.mode.
const (
	TLSSelfSigned = "selfsigned"
	TLSACME       = "acme"
	TLSFiles      = "files"
)

// Values accepted by queue.smarthost_tls.
const (
	SmarthostSTARTTLS = "starttls"
	SmarthostTLS      = "tls"
	SmarthostNone     = "none"
)

// LetsEncryptDirectory is the default tls.acme_directory: Let's Encrypt production.
const LetsEncryptDirectory = "https://acme-v02.api.letsencrypt.org/directory"

// Config is the whole configuration file. Every field's comment names its TOML key and
// default; config/README-keys.md is the same list as a table.
type Config struct {
	// Hostname (hostname) is the name the server gives in EHLO and IMAP greetings and
	// the primary name on its certificate. It must be a DNS name, not an IP address.
	// Default: the machine's host name, or "localhost" if that is not a usable DNS name.
	Hostname string `toml:"hostname"`

	// DataDir (data_dir) holds the database, keys and certificates. A relative path is
	// relative to the working directory. Default: "/var/lib/coibox".
	DataDir string `toml:"data_dir"`

	// LogFormat (log_format) is "text" for people or "json" for log collectors.
	// Default: "text".
	LogFormat string `toml:"log_format"`

	// LogLevel (log_level) is the least severe level logged: "debug", "info", "warn" or
	// "error". Default: "info".
	LogLevel string `toml:"log_level"`

	Listen  Listen  `toml:"listen"`
	TLS     TLS     `toml:"tls"`
	DNS     DNS     `toml:"dns"`
	Limits  Limits  `toml:"limits"`
	Queue   Queue   `toml:"queue"`
	MTASTS  MTASTS  `toml:"mta_sts"`
	Store   Store   `toml:"store"`
	Chat    Chat    `toml:"chat"`
	COI     COI     `toml:"coi"`
	WebPush WebPush `toml:"webpush"`
}

// Listen ([listen]) holds the "host:port" address of each listener; "" disables it.
// An empty host (":25") listens on every address.
type Listen struct {
	// SMTP (listen.smtp) receives mail from other servers (MX) and offers STARTTLS.
	// Default: ":25".
	SMTP string `toml:"smtp"`

	// Submission (listen.submission) accepts mail from users' clients: STARTTLS, then
	// AUTH. Default: ":587".
	Submission string `toml:"submission"`

	// Submissions (listen.submissions) is submission with implicit TLS. Default: ":465".
	Submissions string `toml:"submissions"`

	// IMAP (listen.imap) requires STARTTLS before LOGIN. Default: ":143".
	IMAP string `toml:"imap"`

	// IMAPS (listen.imaps) is IMAP with implicit TLS. Default: ":993".
	IMAPS string `toml:"imaps"`

	// HTTP (listen.http) serves ACME HTTP-01 challenges, autoconfig and redirects to
	// HTTPS. Default: ":80".
	HTTP string `toml:"http"`

	// HTTPS (listen.https) serves the web admin, MTA-STS policy and autoconfig.
	// Default: ":443".
	HTTPS string `toml:"https"`

	// TrustedProxies (listen.trusted_proxies) are the addresses or networks (CIDR) of
	// reverse proxies in front of the HTTP listeners: only from them are the
	// X-Forwarded-For and X-Forwarded-Proto headers believed. Default: [].
	TrustedProxies []string `toml:"trusted_proxies"`

	// MetricsToken (listen.metrics_token) lets a Prometheus elsewhere read /metrics
	// with "Authorization: Bearer <token>"; without it only clients on this host
	// (loopback) may. Default: "".
	MetricsToken string `toml:"metrics_token"`
}

// ParsePrefixes reads listen.trusted_proxies: addresses (a /32 or /128) or CIDR
// networks. Validate has checked them.
func ParsePrefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out
}

// TLS ([tls]) says where certificates come from.
type TLS struct {
	// Mode (tls.mode) is "selfsigned" (generated and kept in <data_dir>/tls), "acme"
	// (obtained automatically, e.g. from Let's Encrypt) or "files" (tls.cert_file and
	// tls.key_file). Default: "selfsigned".
	Mode string `toml:"mode"`

	// CertFile (tls.cert_file) is the PEM certificate chain, leaf first, for mode
	// "files". It is re-read when it changes on disk. Default: "".
	CertFile string `toml:"cert_file"`

	// KeyFile (tls.key_file) is the PEM private key for mode "files". Default: "".
	KeyFile string `toml:"key_file"`

	// ACMEEmail (tls.acme_email) is the contact address given to the ACME CA for
	// expiry and problem notices; "" registers without one. Default: "".
	ACMEEmail string `toml:"acme_email"`

	// ACMEDirectory (tls.acme_directory) is the ACME CA's directory URL.
	// Default: Let's Encrypt production, "https://acme-v02.api.letsencrypt.org/directory".
	ACMEDirectory string `toml:"acme_directory"`

	// ACMECache (tls.acme_cache) is the directory keeping the ACME account key and
	// certificates. Default: "<data_dir>/acme".
	ACMECache string `toml:"acme_cache"`

	// ACMECAFile (tls.acme_ca_file) is a PEM file of the roots trusted for the ACME
	// CA's own HTTPS, for a private CA (step-ca, Pebble); "" trusts the system's.
	// Default: "".
	ACMECAFile string `toml:"acme_ca_file"`

	// ExtraNames (tls.extra_names) are more DNS names the certificate covers besides
	// hostname. Default: [].
	ExtraNames []string `toml:"extra_names"`
}

// DNS ([dns]) configures name lookups.
type DNS struct {
	// Resolver (dns.resolver) is the "ip:port" of the DNS server used for every lookup
	// (MX, SPF, DKIM, DMARC, MTA-STS); "" uses the system resolver. Default: "".
	Resolver string `toml:"resolver"`
}

// Limits ([limits]) bounds what clients and senders may use. Sizes are strings such as
// "30MiB", "500KB" or "1024" (bytes); KB is 1000 bytes and KiB 1024. Durations are
// strings such as "90s", "5m" or "2h30m".
type Limits struct {
	// MessageSize (limits.message_size) is the largest message accepted by SMTP and
	// announced in the SIZE extension. Default: "30MiB".
	MessageSize Size `toml:"message_size"`

	// Recipients (limits.recipients) is the most RCPT TO commands accepted in one SMTP
	// transaction. Default: 1000.
	Recipients int `toml:"recipients"`

	// SMTPConnections (limits.smtp_connections) is the most SMTP connections served at
	// once, over all SMTP listeners. When they are all taken, a new connection replaces
	// the oldest one that has not said EHLO yet (nor finished its TLS handshake on
	// port 465), so silent sockets cannot lock everyone out. Default: 500.
	SMTPConnections int `toml:"smtp_connections"`

	// SMTPConnectionsPerIP (limits.smtp_connections_per_ip) is the most concurrent SMTP
	// connections from one IP address. Default: 20.
	SMTPConnectionsPerIP int `toml:"smtp_connections_per_ip"`

	// IPv4Prefix (limits.ipv4_prefix) is how many leading bits of an IPv4 client
	// address count for the per-IP connection limits and failed-login counts: 32
	// counts each address, 24 a whole /24 as one client. Default: 32.
	IPv4Prefix int `toml:"ipv4_prefix"`

	// IPv6Prefix (limits.ipv6_prefix) is the same for IPv6: a host usually owns a whole
	// /64 and could otherwise rotate through its addresses. Default: 64.
	IPv6Prefix int `toml:"ipv6_prefix"`

	// TLSHandshakeTimeout (limits.tls_handshake_timeout) is how long a client may take
	// to complete a TLS handshake, implicit or after STARTTLS, on every listener (SMTP,
	// IMAP, HTTPS); a socket that never sends its ClientHello is closed then.
	// Default: "10s".
	TLSHandshakeTimeout Duration `toml:"tls_handshake_timeout"`

	// SMTPCommandTimeout (limits.smtp_command_timeout) is how long the server waits for
	// the next SMTP command. Default: "5m".
	SMTPCommandTimeout Duration `toml:"smtp_command_timeout"`

	// SMTPDataTimeout (limits.smtp_data_timeout) is how long the server waits for the
	// whole message after DATA. Default: "10m".
	SMTPDataTimeout Duration `toml:"smtp_data_timeout"`

	// IMAPConnections (limits.imap_connections) is the most IMAP connections served at
	// once, over both IMAP listeners (and IMAP on port 443). When they are all taken,
	// a new connection replaces the oldest one that has not logged in yet, or is told
	// "* BYE" if every one has. Default: 20000.
	IMAPConnections int `toml:"imap_connections"`

	// IMAPConnectionsPerIP (limits.imap_connections_per_ip) is the most concurrent IMAP
	// connections from one IP address. Default: 50.
	IMAPConnectionsPerIP int `toml:"imap_connections_per_ip"`

	// IMAPConnectionsPerAccount (limits.imap_connections_per_account) is the most
	// concurrent logged-in IMAP sessions of one account. Default: 100.
	IMAPConnectionsPerAccount int `toml:"imap_connections_per_account"`

	// IMAPIdleTimeout (limits.imap_idle_timeout) is how long an IMAP connection may stay
	// silent, in IDLE or otherwise, before it is closed. Default: "30m".
	IMAPIdleTimeout Duration `toml:"imap_idle_timeout"`

	// IMAPLineLength (limits.imap_line_length) is the longest IMAP command line in
	// bytes, literals excluded. Default: 65536.
	IMAPLineLength int `toml:"imap_line_length"`

	// IMAPLiteralSize (limits.imap_literal_size) is the largest IMAP literal, which
	// bounds APPEND; "0" means the same as limits.message_size.
	// Default: limits.message_size.
	IMAPLiteralSize Size `toml:"imap_literal_size"`

	// AuthFailuresPerIP (limits.auth_failures_per_ip) is how many failed logins (SMTP
	// AUTH and IMAP LOGIN together) one IP address may make within
	// limits.auth_failure_window before further attempts are refused. Default: 10.
	AuthFailuresPerIP int `toml:"auth_failures_per_ip"`

	// AuthFailureWindow (limits.auth_failure_window) is the time over which
	// limits.auth_failures_per_ip is counted. Default: "15m".
	AuthFailureWindow Duration `toml:"auth_failure_window"`

	// PasswordMinLength (limits.password_min_length) is the fewest characters a
	// password given to "coibox account add" or "account passwd" may have; generated
	// passwords have 20. Default: 10.
	PasswordMinLength int `toml:"password_min_length"`

	// Quota (limits.quota) is the storage quota of an account that has none of its own;
	// "0" means unlimited. Default: "0".
	Quota Size `toml:"quota"`
}

// Queue ([queue]) configures delivery to other servers.
type Queue struct {
	// Lifetime (queue.lifetime) is how long a message is retried before it bounces.
	// Default: "120h".
	Lifetime Duration `toml:"lifetime"`

	// DelayNotice (queue.delay_notice) is how long a message waits before the sender is
	// told it is delayed; "0s" sends no delay notices. Default: "4h".
	DelayNotice Duration `toml:"delay_notice"`

	// MinRetry (queue.min_retry) is the wait before the first retry; later waits double
	// up to queue.max_retry. Default: "5m".
	MinRetry Duration `toml:"min_retry"`

	// MaxRetry (queue.max_retry) is the longest wait between retries. Default: "4h".
	MaxRetry Duration `toml:"max_retry"`

	// RemotePort (queue.remote_port) is the TCP port used to reach remote MX hosts.
	// Only tests change it. Default: 25.
	RemotePort int `toml:"remote_port"`

	// Smarthost (queue.smarthost) is the "host:port" of a relay that receives all
	// outgoing mail; "" delivers directly to each domain's MX. Default: "".
	Smarthost string `toml:"smarthost"`

	// SmarthostUser (queue.smarthost_user) is the user name for AUTH at the smarthost;
	// "" sends without AUTH. Default: "".
	SmarthostUser string `toml:"smarthost_user"`

	// SmarthostPassword (queue.smarthost_password) is the password for AUTH at the
	// smarthost. Default: "".
	SmarthostPassword string `toml:"smarthost_password"`

	// SmarthostTLS (queue.smarthost_tls) is how the smarthost connection is secured:
	// "starttls", "tls" (implicit TLS, usually port 465) or "none". Default: "starttls".
	SmarthostTLS string `toml:"smarthost_tls"`

	// SourceIP (queue.source_ip) is the local IP address outgoing SMTP connections are
	// made from; "" lets the system choose. A host with several addresses sets it so
	// that mail leaves from the address its SPF record and PTR name. Default: "".
	SourceIP string `toml:"source_ip"`
}

// MTA-STS modes accepted by mta_sts.mode (RFC 8461 5).
const (
	MTASTSEnforce = "enforce"
	MTASTSTesting = "testing"
	MTASTSNone    = "none"
)

// MTASTS ([mta_sts]) is the MTA-STS policy served at
// https://mta-sts.<domain>/.well-known/mta-sts.txt for every domain.
type MTASTS struct {
	// Mode (mta_sts.mode) tells senders what to do when they cannot deliver over
	// TLS with a valid certificate for hostname: "enforce" (do not deliver),
	// "testing" (deliver anyway, report) or "none" (the policy is withdrawn).
	// Default: "enforce".
	Mode string `toml:"mode"`

	// MaxAge (mta_sts.max_age) is how long senders keep the policy. Default: "672h"
	// (28 days, as chatmail relays publish; RFC 8461 suggests weeks).
	MaxAge Duration `toml:"max_age"`
}

// Store ([store]) tunes the database.
type Store struct {
	// GroupCommitMax (store.group_commit_max) is the most writes committed together in
	// one transaction. Default: 256.
	GroupCommitMax int `toml:"group_commit_max"`
}

// Chat ([chat]) holds the server-wide switches of the chat rules; each domain's own
// settings are its profile (coibox domain set, chatmail spec §1).
type Chat struct {
	// XChatmail (chat.xchatmail) advertises XCHATMAIL to accounts of chatmail domains
	// whose profile has it; false hides it everywhere (newer Delta Chat cores read
	// METADATA instead). Default: true.
	XChatmail bool `toml:"xchatmail"`

	// XDeltaPush (chat.xdeltapush) advertises XDELTAPUSH where a domain's profile has
	// push on; false hides it everywhere. Default: true.
	XDeltaPush bool `toml:"xdeltapush"`

	// AccountsPerNetwork (chat.accounts_per_network) is the most accounts first logins
	// may make per hour from one client /24 (IPv4) or /64 (IPv6). Default: 20.
	AccountsPerNetwork int `toml:"accounts_per_network"`

	// TURNListen (chat.turn_listen) is the "host:port" of the embedded TURN server for
	// calls, UDP and TCP; it runs when a chatmail domain's profile has turn=embedded.
	// "" turns it off. Default: ":3478".
	TURNListen string `toml:"turn_listen"`

	// TURNPublicIP (chat.turn_public_ip) is the IPv4 address clients relay through;
	// "" takes hostname's first IPv4 address. Default: "".
	TURNPublicIP string `toml:"turn_public_ip"`

	// TURNAllowLoopback (chat.turn_allow_loopback) lets the TURN server relay to
	// loopback addresses and to itself; only tests on one machine need it.
	// Default: false.
	TURNAllowLoopback bool `toml:"turn_allow_loopback"`

	// ALPN443 (chat.alpn443) lets listen.https carry IMAP and submission too, for
	// clients that ask for ALPN "imap" or "smtp" (Delta Chat on networks that let
	// only port 443 through). Default: true.
	ALPN443 bool `toml:"alpn443"`

	// MXDelivInbound (chat.mxdeliv_inbound) accepts mail from other chatmail
	// servers over HTTPS POST /mxdeliv on listen.https (chatmail spec §11.1), checked
	// like port 25 and always with aligned DKIM. Default: true.
	MXDelivInbound bool `toml:"mxdeliv_inbound"`

	// MXDelivOutbound (chat.mxdeliv_outbound) sends mail from chatmail domains to
	// each MX host's /mxdeliv first, and over SMTP when that fails (§11.2).
	// Default: true.
	MXDelivOutbound bool `toml:"mxdeliv_outbound"`

	// MXDelivPort (chat.mxdeliv_port) is the HTTPS port of other servers' /mxdeliv.
	// Only tests change it. Default: 443.
	MXDelivPort int `toml:"mxdeliv_port"`

	// AppVersions (chat.appversions) is served as the METADATA entry
	// /shared/vendor/deltachat/appversions: one line of JSON telling newer Delta Chat
	// cores which app versions are current; "" serves NIL. Default: "".
	AppVersions string `toml:"appversions"`

	// PushNotifyURL (chat.push_notify_url) is where Delta Chat device tokens are
	// posted when mail arrives for a domain with push on (chatmail spec §9); the
	// proxy there wakes the device. Default: "https://notifications.delta.chat/notify".
	PushNotifyURL string `toml:"push_notify_url"`
}

// COI ([coi]) is the Chat-Over-IMAP server extension (coi spec §10), kept for COI
// clients; Delta Chat uses none of it.
type COI struct {
	// Enabled (coi.enabled) advertises COI after login and serves its METADATA
	// entries and folders. Default: true.
	Enabled bool `toml:"enabled"`

	// MailboxRoot (coi.mailbox_root) is the folder COI keeps Chats and Contacts in,
	// the same for every account. Default: "COI".
	MailboxRoot string `toml:"mailbox_root"`

	// FilingDefault (coi.filing_default) is whether accounts may let COI file chat
	// mail out of INBOX (message-filter active or seen) unless their own coi_filing
	// says otherwise. Off, since Delta Chat watches INBOX only. Default: false.
	FilingDefault bool `toml:"filing_default"`
}

// WebPush ([webpush]) is the IMAP WebPush extension of COI (coi spec §8, §10).
type WebPush struct {
	// SubscriptionLimit (webpush.subscription_limit) is the most subscriptions,
	// pending or validated, one account may hold. Default: 10.
	SubscriptionLimit int `toml:"subscription_limit"`

	// ValidationWindow (webpush.validation_window) is how long a new subscription may
	// wait for its validation before it is dropped. Default: "5m".
	ValidationWindow Duration `toml:"validation_window"`

	// Timeout (webpush.timeout) bounds each request to a push service, connecting
	// included. Default: "10s".
	Timeout Duration `toml:"timeout"`

	// TTL (webpush.ttl) is how long push services keep an undelivered notification.
	// Default: "30s".
	TTL Duration `toml:"ttl"`

	// Padding (webpush.padding) pads every notification to the next KiB, so its
	// size tells less. Default: false.
	Padding bool `toml:"padding"`

	// AllowEndpoints (webpush.allow_endpoints) are "host" or "host:port" endpoints
	// exempt from the rule that push services must have public addresses; tests use
	// loopback. Default: [].
	AllowEndpoints []string `toml:"allow_endpoints"`

	// HTTPSProxy (webpush.https_proxy) is the URL of a proxy for requests to push
	// services; "" connects directly. Default: "".
	HTTPSProxy string `toml:"https_proxy"`
}

// Default returns the production defaults that a config file fills in from.
func Default() *Config {
	host := "localhost"
	if h, err := os.Hostname(); err == nil {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if checkDNSName(h) == "" {
			host = h
		}
	}
	return &Config{
		Hostname:  host,
		DataDir:   "/var/lib/coibox",
		LogFormat: "text",
		LogLevel:  "info",
		Listen: Listen{
			SMTP:        ":25",
			Submission:  ":587",
			Submissions: ":465",
			IMAP:        ":143",
			IMAPS:       ":993",
			HTTP:        ":80",
			HTTPS:       ":443",
		},
		TLS: TLS{
			Mode:          TLSSelfSigned,
			ACMEDirectory: LetsEncryptDirectory,
		},
		Limits: Limits{
			MessageSize:               30 * MiB,
			Recipients:                1000,
			SMTPConnections:           500,
			SMTPConnectionsPerIP:      20,
			IPv4Prefix:                32,
			IPv6Prefix:                64,
			TLSHandshakeTimeout:       Duration(10 * time.Second),
			SMTPCommandTimeout:        Duration(5 * time.Minute),
			SMTPDataTimeout:           Duration(10 * time.Minute),
			IMAPConnections:           20000,
			IMAPConnectionsPerIP:      50,
			IMAPConnectionsPerAccount: 100,
			IMAPIdleTimeout:           Duration(30 * time.Minute),
			IMAPLineLength:            65536,
			AuthFailuresPerIP:         10,
			AuthFailureWindow:         Duration(15 * time.Minute),
			PasswordMinLength:         10,
		},
		Queue: Queue{
			Lifetime:     Duration(120 * time.Hour),
			DelayNotice:  Duration(4 * time.Hour),
			MinRetry:     Duration(5 * time.Minute),
			MaxRetry:     Duration(4 * time.Hour),
			RemotePort:   25,
			SmarthostTLS: SmarthostSTARTTLS,
		},
		MTASTS: MTASTS{Mode: MTASTSEnforce, MaxAge: Duration(28 * 24 * time.Hour)},
		Store:  Store{GroupCommitMax: 256},
		Chat: Chat{XChatmail: true, XDeltaPush: true, AccountsPerNetwork: 20, TURNListen: ":3478",
			PushNotifyURL: "https://notifications.delta.chat/notify", ALPN443: true,
			MXDelivInbound: true, MXDelivOutbound: true, MXDelivPort: 443},
		COI: COI{Enabled: true, MailboxRoot: "COI"},
		WebPush: WebPush{SubscriptionLimit: 10, ValidationWindow: Duration(5 * time.Minute), Timeout: Duration(10 * time.Second),
			TTL: Duration(30 * time.Second)},
	}
}

//go:embed local.toml
var localProfile []byte

// Local returns the embedded local profile: hostname localhost, data in ./coibox-data,
// a self-signed certificate and listeners on 127.0.0.1 high ports, for trying coibox
// out without root or DNS.
func Local() *Config {
	c, err := Parse(LocalSource, localProfile)
	if err != nil {
		// The profile is compiled in and TestLocal loads it, so this is a build defect.
		panic(err)
	}
	return c
}

// Load reads the config file at path, fills in defaults and validates it. Error
// messages start with "config <path>:" and name the offending key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Resolve picks the configuration every subcommand uses: the explicit --config file if
// given, else ./coibox.toml if it exists, else the embedded local profile. It also
// returns where the configuration came from, for logging.
func Resolve(explicit string) (*Config, string, error) {
	if explicit != "" {
		c, err := Load(explicit)
		return c, explicit, err
	}
	const def = "coibox.toml"
	switch _, err := os.Stat(def); {
	case err == nil:
		c, err := Load(def)
		return c, def, err
	case !errors.Is(err, os.ErrNotExist):
		// An unreadable ./coibox.toml is a mistake to report, not a reason to silently
		// run with a different configuration.
		return nil, def, fmt.Errorf("look for config: %w", err)
	}
	return Local(), LocalSource, nil
}

// Parse is Load for a config already in memory; name stands for the file in messages.
func Parse(name string, data []byte) (*Config, error) {
	fail := func(errs ...error) error {
		for i, e := range errs {
			errs[i] = fmt.Errorf("config %s: %w", name, e)
		}
		return errors.Join(errs...)
	}

	// A first pass into a plain map catches syntax errors and values of the wrong TOML
	// type, so that both can be reported by key in plain words rather than as the
	// decoder's reflection messages.
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fail(fmt.Errorf("line %d, column %d: %s", pe.Position.Line, pe.Position.Col, pe.Message))
		}
		return nil, fail(err)
	}
	if errs := checkTypes(raw, reflect.TypeFor[Config](), ""); len(errs) > 0 {
		return nil, fail(errs...)
	}

	c := Default()
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.LastKey != "" {
			// Our Size and Duration parsers word their messages for this position.
			return nil, fail(fmt.Errorf("%s: %s", pe.LastKey, pe.Message))
		}
		return nil, fail(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		unknown := make(map[string]bool, len(und))
		for _, k := range und {
			unknown[k.String()] = true
		}
		var errs []error
		for _, k := range und {
			if hasUnknownParent(unknown, k) {
				continue
			}
			if len(errs) == 10 {
				// A file this far off is probably not a coibox config at all.
				errs = append(errs, errors.New("more unknown keys follow"))
				break
			}
			errs = append(errs, unknownKey(k.String()))
		}
		return nil, fail(errs...)
	}
	if errs := c.check(); len(errs) > 0 {
		return nil, fail(errs...)
	}
	return c, nil
}

// hasUnknownParent reports whether an ancestor table of k is itself unknown, so that an
// unknown [table] is reported once rather than once per key inside it.
func hasUnknownParent(unknown map[string]bool, k toml.Key) bool {
	for i := 1; i < len(k); i++ {
		if unknown[k[:i].String()] {
			return true
		}
	}
	return false
}

// unknownKey words the error for a key Config has no field for, with a guess at the
// intended key since most unknown keys are typos or keys placed in the wrong table.
func unknownKey(key string) error {
	if guess := closestKey(key); guess != "" {
		return fmt.Errorf("unknown key %q (did you mean %q?)", key, guess)
	}
	return fmt.Errorf("unknown key %q", key)
}

// Keys returns every key the config file accepts, as dotted paths in file order.
func Keys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := prefix + f.Tag.Get("toml")
			if f.Type.Kind() == reflect.Struct && !isText(f.Type) {
				walk(f.Type, name+".")
				continue
			}
			keys = append(keys, name)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// closestKey returns the known key nearest to key: the same last name in another table,
// else an edit distance of at most two.
func closestKey(key string) string {
	if len(key) > 100 {
		return "" // no typo of a real key, and the distance would cost time
	}
	keys := Keys()
	last := key[strings.LastIndex(key, ".")+1:]
	for _, k := range keys {
		if k[strings.LastIndex(k, ".")+1:] == last {
			return k
		}
	}
	best, bestD := "", 3
	for _, k := range keys {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
