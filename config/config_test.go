package config

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestLocal(t *testing.T) {
	c := Local()
	want := Listen{
		SMTP:        "127.0.0.1:2525",
		Submission:  "127.0.0.1:2587",
		Submissions: "127.0.0.1:2465",
		IMAP:        "127.0.0.1:2143",
		IMAPS:       "127.0.0.1:2993",
		HTTP:        "127.0.0.1:8080",
		HTTPS:       "",
	}
	if !reflect.DeepEqual(c.Listen, want) {
		t.Errorf("Listen = %+v, want %+v", c.Listen, want)
	}
	if c.Hostname != "localhost" || c.DataDir != "./coibox-data" || c.TLS.Mode != TLSSelfSigned {
		t.Errorf("hostname, data_dir, tls.mode = %q, %q, %q", c.Hostname, c.DataDir, c.TLS.Mode)
	}
	// Keys the profile leaves out keep the production defaults.
	if c.Limits.MessageSize != 30*MiB || c.Queue.RemotePort != 25 {
		t.Errorf("defaults not kept: message_size %v, remote_port %d", c.Limits.MessageSize, c.Queue.RemotePort)
	}
	if Local() == c {
		t.Error("Local returned the same pointer twice; callers must be free to change their copy")
	}
}

func TestSparseFileKeepsDefaults(t *testing.T) {
	c, err := Parse("x.toml", []byte(`
hostname = "Mail.Example.org."
data_dir = "/srv/coibox"
[limits]
message_size = "10MiB"
`))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.Hostname != "mail.example.org" {
		t.Errorf("hostname = %q, want it normalized to mail.example.org", c.Hostname)
	}
	if !reflect.DeepEqual(c.Listen, d.Listen) {
		t.Errorf("listen = %+v, want defaults %+v", c.Listen, d.Listen)
	}
	if c.TLS.ACMECache != filepath.Join("/srv/coibox", "acme") {
		t.Errorf("tls.acme_cache = %q, want it under data_dir", c.TLS.ACMECache)
	}
	if c.TLS.ACMEDirectory != LetsEncryptDirectory {
		t.Errorf("tls.acme_directory = %q", c.TLS.ACMEDirectory)
	}
	if c.Limits.IMAPLiteralSize != 10*MiB {
		t.Errorf("limits.imap_literal_size = %v, want message_size 10MiB", c.Limits.IMAPLiteralSize)
	}
	if time.Duration(c.Limits.SMTPCommandTimeout) != 5*time.Minute || time.Duration(c.Queue.Lifetime) != 120*time.Hour {
		t.Errorf("durations = %v, %v", c.Limits.SMTPCommandTimeout, c.Queue.Lifetime)
	}
	// Issue 13: a socket that never finishes a TLS handshake is closed within 30s.
	if d := time.Duration(c.Limits.TLSHandshakeTimeout); d <= 0 || d > 30*time.Second {
		t.Errorf("limits.tls_handshake_timeout default %v, want at most 30s", d)
	}
	if c.LogFormat != "text" || c.LogLevel != "info" || c.Queue.SmarthostTLS != "starttls" || c.Store.GroupCommitMax != 256 {
		t.Errorf("defaults: %q %q %q %d", c.LogFormat, c.LogLevel, c.Queue.SmarthostTLS, c.Store.GroupCommitMax)
	}
}

func TestFullFile(t *testing.T) {
	c, err := Parse("x.toml", []byte(`
hostname = "mail.example.org"
data_dir = "/var/lib/coibox"
log_format = "json"
log_level = "debug"
[listen]
smtp = "[::1]:25"
submission = "localhost:587"
submissions = ""
imap = "192.0.2.1:143"
imaps = ":993"
http = ":80"
https = ":443"
[tls]
mode = "acme"
acme_email = "admin@example.org"
acme_directory = "https://acme-staging-v02.api.letsencrypt.org/directory"
acme_cache = "/tmp/acme"
extra_names = ["MX.example.org", "imap.example.org"]
[dns]
resolver = "[2001:db8::53]:53"
[limits]
message_size = 1048576
recipients = 50
smtp_connections = 10
smtp_connections_per_ip = 2
ipv4_prefix = 24
ipv6_prefix = 56
tls_handshake_timeout = "5s"
smtp_command_timeout = "1m30s"
smtp_data_timeout = "20m"
imap_connections = 300
imap_connections_per_ip = 5
imap_connections_per_account = 6
imap_idle_timeout = "29m"
imap_line_length = 8192
imap_literal_size = "64MiB"
auth_failures_per_ip = 3
auth_failure_window = "1h"
password_min_length = 12
quota = "1GB"
[queue]
lifetime = "48h"
delay_notice = "0s"
min_retry = "1m"
max_retry = "1h"
remote_port = 2525
smarthost = "relay.example.net:465"
smarthost_user = "u"
smarthost_password = "p"
smarthost_tls = "tls"
source_ip = "2001:DB8::25"
[mta_sts]
mode = "testing"
max_age = "720h"
[store]
group_commit_max = 64
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.SMTP != "[::1]:25" || c.Listen.Submissions != "" {
		t.Errorf("listen = %+v", c.Listen)
	}
	if !reflect.DeepEqual(c.TLS.ExtraNames, []string{"mx.example.org", "imap.example.org"}) {
		t.Errorf("tls.extra_names = %q", c.TLS.ExtraNames)
	}
	if c.Limits.MessageSize != MiB || c.Limits.IMAPLiteralSize != 64*MiB || c.Limits.Quota != GB {
		t.Errorf("sizes = %v %v %v", c.Limits.MessageSize, c.Limits.IMAPLiteralSize, c.Limits.Quota)
	}
	if time.Duration(c.Limits.SMTPCommandTimeout) != 90*time.Second || c.Queue.DelayNotice != 0 {
		t.Errorf("durations = %v %v", c.Limits.SMTPCommandTimeout, c.Queue.DelayNotice)
	}
	if c.Queue.RemotePort != 2525 || c.Store.GroupCommitMax != 64 || c.TLS.ACMECache != "/tmp/acme" {
		t.Errorf("queue.remote_port %d, store.group_commit_max %d, tls.acme_cache %q", c.Queue.RemotePort, c.Store.GroupCommitMax, c.TLS.ACMECache)
	}
	if l := c.Limits; l.IPv4Prefix != 24 || l.IPv6Prefix != 56 || time.Duration(l.TLSHandshakeTimeout) != 5*time.Second || l.IMAPConnections != 300 || l.PasswordMinLength != 12 {
		t.Errorf("limits: prefixes %d/%d, tls_handshake_timeout %v, imap_connections %d, password_min_length %d",
			l.IPv4Prefix, l.IPv6Prefix, l.TLSHandshakeTimeout, l.IMAPConnections, l.PasswordMinLength)
	}
	if c.Queue.SourceIP != "2001:db8::25" || c.MTASTS.Mode != MTASTSTesting || time.Duration(c.MTASTS.MaxAge) != 720*time.Hour {
		t.Errorf("queue.source_ip %q, mta_sts %+v", c.Queue.SourceIP, c.MTASTS)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string // each must appear in the error
	}{
		{"unknown nested key", "[listen]\nsmpt = \":25\"",
			[]string{`config x.toml: unknown key "listen.smpt" (did you mean "listen.smtp"?)`}},
		{"unknown top key", "hostnme = \"a.example\"",
			[]string{`unknown key "hostnme" (did you mean "hostname"?)`}},
		{"key in wrong table", "smtp = \":25\"",
			[]string{`unknown key "smtp" (did you mean "listen.smtp"?)`}},
		{"unknown table reported once", "[frobnicate]\na = 1\nb = 2",
			[]string{`config x.toml: unknown key "frobnicate"`}},
		{"unknown key deep", "[limits.extra]\nx = 1",
			[]string{`unknown key "limits.extra"`}},
		{"syntax", "hostname = ",
			[]string{"config x.toml: line 1"}},
		{"port without colon", "[listen]\nsmtp = \"25\"",
			[]string{`config x.toml: listen.smtp: "25" is not host:port (try ":25")`}},
		{"port as number", "[listen]\nimap = 143",
			[]string{`listen.imap: expected a quoted string, got the number 143 (try ":143")`}},
		{"host without port", "[listen]\nsubmission = \"localhost\"",
			[]string{`listen.submission: "localhost" is not host:port (try "localhost:587")`}},
		{"bare ipv6", "[listen]\nimaps = \"::1\"",
			[]string{`listen.imaps: "::1" is not host:port (try "[::1]:993")`}},
		{"empty port", "[listen]\nhttp = \"127.0.0.1:\"",
			[]string{`listen.http: "127.0.0.1:" has no port (try "127.0.0.1:80")`}},
		{"port out of range", "[listen]\nhttps = \":70000\"",
			[]string{`listen.https: ":70000": port 70000 is out of range (1-65535)`}},
		{"port zero", "[listen]\nhttps = \":0\"",
			[]string{`listen.https: ":0": port 0 is out of range`}},
		{"port name", "[listen]\nsmtp = \":smtp\"",
			[]string{`listen.smtp: ":smtp": port "smtp" is not a number`}},
		{"bad listen host", "[listen]\nsmtp = \"bad_host:25\"",
			[]string{`listen.smtp: "bad_host:25": host "bad_host" is not a valid DNS name`}},
		{"same port twice", "[listen]\nsmtp = \":2525\"\nimap = \"127.0.0.1:2525\"",
			[]string{`listen.imap: "127.0.0.1:2525" uses the same port as listen.smtp`}},
		{"listen not a table", "listen = \":25\"",
			[]string{`listen: expected a table ([listen]), got the string ":25"`}},
		{"bad size", "[limits]\nmessage_size = \"30XB\"",
			[]string{`config x.toml: limits.message_size: "30XB" is not a size: unknown unit "XB"`}},
		{"fractional size", "[limits]\nquota = \"1.5GiB\"",
			[]string{`limits.quota: "1.5GiB" is not a size: use a whole number`}},
		{"negative size", "[limits]\nmessage_size = -1",
			[]string{`limits.message_size: "-1" is not a size: sizes cannot be negative`}},
		{"zero size", "[limits]\nmessage_size = \"0\"",
			[]string{`limits.message_size: "0" must be larger than zero`}},
		{"bool size", "[limits]\nmessage_size = true",
			[]string{`limits.message_size: expected a size such as "30MiB", got true`}},
		{"bad duration", "[limits]\nsmtp_data_timeout = \"ten minutes\"",
			[]string{`limits.smtp_data_timeout: "ten minutes" is not a duration: write it like "90s"`}},
		{"day duration", "[queue]\nlifetime = \"5d\"",
			[]string{`queue.lifetime: "5d" is not a duration: there is no day unit`}},
		{"number duration", "[queue]\nmin_retry = 300",
			[]string{`queue.min_retry: 300 has no unit; write a duration string such as "300s"`}},
		{"negative duration", "[queue]\nmax_retry = \"-1h\"",
			[]string{`queue.max_retry: "-1h" is not a duration: durations cannot be negative`}},
		{"zero duration", "[limits]\nimap_idle_timeout = \"0s\"",
			[]string{`limits.imap_idle_timeout: "0s" must be longer than zero`}},
		{"retry order", "[queue]\nmin_retry = \"1h\"\nmax_retry = \"5m\"",
			[]string{`queue.max_retry: "5m" is shorter than queue.min_retry "1h"`}},
		{"delay notice too late", "[queue]\ndelay_notice = \"200h\"",
			[]string{`queue.delay_notice: "200h" is not shorter than queue.lifetime "120h"`}},
		{"int as string", "[limits]\nrecipients = \"many\"",
			[]string{`limits.recipients: expected a whole number, got the string "many"`}},
		{"zero int", "[limits]\nrecipients = 0",
			[]string{`limits.recipients: 0 must be at least 1`}},
		{"ipv4 prefix", "[limits]\nipv4_prefix = 33",
			[]string{`limits.ipv4_prefix: 33 is not a prefix length from 8 to 32`}},
		{"ipv6 prefix", "[limits]\nipv6_prefix = 8",
			[]string{`limits.ipv6_prefix: 8 is not a prefix length from 16 to 128`}},
		{"handshake timeout too long", "[limits]\ntls_handshake_timeout = \"10m\"",
			[]string{`limits.tls_handshake_timeout: "10m" is outside 1s to 5m`}},
		{"handshake timeout zero", "[limits]\ntls_handshake_timeout = \"0s\"",
			[]string{`limits.tls_handshake_timeout: "0s" is outside 1s to 5m`}},
		{"imap connections", "[limits]\nimap_connections = 0",
			[]string{`limits.imap_connections: 0 must be at least 1`}},
		{"password length", "[limits]\npassword_min_length = 0",
			[]string{`limits.password_min_length: 0 must be at least 1`}},
		{"line length", "[limits]\nimap_line_length = 100",
			[]string{`limits.imap_line_length: 100 is too small`}},
		{"remote port", "[queue]\nremote_port = 0",
			[]string{`queue.remote_port: 0 is not a TCP port (1-65535)`}},
		{"files without cert", "[tls]\nmode = \"files\"",
			[]string{`tls.cert_file: must be set when tls.mode is "files"`, `tls.key_file: must be set when tls.mode is "files"`}},
		{"bad tls mode", "[tls]\nmode = \"letsencrypt\"",
			[]string{`tls.mode: "letsencrypt" is not one of "selfsigned", "acme" or "files"`}},
		{"acme localhost", "hostname = \"localhost\"\n[tls]\nmode = \"acme\"",
			[]string{`hostname: "localhost" cannot get a certificate from an ACME CA`}},
		{"trusted proxy", "[listen]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"nginx\"]",
			[]string{`listen.trusted_proxies: "nginx" is neither an IP address nor a CIDR network`}},
		{"acme directory", "hostname = \"mail.example.org\"\n[tls]\nmode = \"acme\"\nacme_directory = \"letsencrypt\"",
			[]string{`tls.acme_directory: "letsencrypt" is not an https URL`}},
		{"extra names not a list", "[tls]\nextra_names = \"a.example\"",
			[]string{`tls.extra_names: expected a list of strings such as ["a.example"], got the string "a.example"`}},
		{"bad extra name", "[tls]\nextra_names = [\"ok.example\", \"-bad.example\"]",
			[]string{`tls.extra_names: "-bad.example" is not a valid DNS name: label "-bad" starts or ends with a hyphen`}},
		{"hostname ip", "hostname = \"192.0.2.1\"",
			[]string{`hostname: "192.0.2.1" is an IP address, not a DNS name`}},
		{"hostname underscore", "hostname = \"mail_1.example.org\"",
			[]string{`hostname: "mail_1.example.org" is not a valid DNS name: label "mail_1" may contain only letters`}},
		{"hostname empty", "hostname = \"\"",
			[]string{`hostname: is empty`}},
		{"hostname unicode", "hostname = \"mäil.example.org\"",
			[]string{`hostname: "mäil.example.org" is not a valid DNS name: write internationalized names in their ASCII form`}},
		{"hostname double dot", "hostname = \"a..example\"",
			[]string{`hostname: "a..example" is not a valid DNS name: it has an empty label`}},
		{"data dir", "data_dir = \"\"",
			[]string{`data_dir: is empty`}},
		{"log format", "log_format = \"xml\"",
			[]string{`log_format: "xml" is not one of "text" or "json"`}},
		{"log level", "log_level = \"trace\"",
			[]string{`log_level: "trace" is not one of "debug", "info", "warn" or "error"`}},
		{"resolver name", "[dns]\nresolver = \"dns.google:53\"",
			[]string{`dns.resolver: "dns.google:53": host "dns.google" must be an IP address`}},
		{"resolver no port", "[dns]\nresolver = \"9.9.9.9\"",
			[]string{`dns.resolver: "9.9.9.9" is not host:port (try "9.9.9.9:53")`}},
		{"resolver no host", "[dns]\nresolver = \":53\"",
			[]string{`dns.resolver: ":53" has no IP address`}},
		{"smarthost user without host", "[queue]\nsmarthost_user = \"u\"\nsmarthost_password = \"p\"",
			[]string{`queue.smarthost_user: is set, but queue.smarthost is empty`}},
		{"smarthost no password", "[queue]\nsmarthost = \"relay.example:587\"\nsmarthost_user = \"u\"",
			[]string{`queue.smarthost_password: must be set when queue.smarthost_user is`}},
		{"smarthost cleartext password", "[queue]\nsmarthost = \"relay.example:25\"\nsmarthost_user = \"u\"\nsmarthost_password = \"p\"\nsmarthost_tls = \"none\"",
			[]string{`queue.smarthost_tls: "none" would send the smarthost password unencrypted`}},
		{"smarthost no host", "[queue]\nsmarthost = \":587\"",
			[]string{`queue.smarthost: ":587" has no host name`}},
		{"smarthost tls", "[queue]\nsmarthost_tls = \"ssl\"",
			[]string{`queue.smarthost_tls: "ssl" is not one of "starttls", "tls" or "none"`}},
		{"source ip not an ip", "[queue]\nsource_ip = \"mx.example.org\"",
			[]string{`queue.source_ip: "mx.example.org" is not an IP address`}},
		{"source ip unspecified", "[queue]\nsource_ip = \"0.0.0.0\"",
			[]string{`queue.source_ip: "0.0.0.0" is no particular address`}},
		{"mta-sts mode", "[mta_sts]\nmode = \"strict\"",
			[]string{`mta_sts.mode: "strict" is not one of "enforce", "testing" or "none"`}},
		{"mta-sts max_age too short", "[mta_sts]\nmax_age = \"1h\"",
			[]string{`mta_sts.max_age: "1h" is outside 24h to 8766h`}},
		{"mta-sts max_age too long", "[mta_sts]\nmax_age = \"9000h\"",
			[]string{`mta_sts.max_age: "9000h" is outside 24h to 8766h`}},
		{"mta-sts max_age fraction", "[mta_sts]\nmax_age = \"24h0.5s\"",
			[]string{`mta_sts.max_age: "24h0m0.5s" is not a whole number of seconds`}},
		{"group commit", "[store]\ngroup_commit_max = 0",
			[]string{`store.group_commit_max: 0 must be at least 1`}},
		{"several errors reported together", "log_level = \"loud\"\n[limits]\nrecipients = 0",
			[]string{"config x.toml: log_level:", "config x.toml: limits.recipients:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("x.toml", []byte(tt.file))
			if err == nil {
				t.Fatalf("accepted; got %+v", c)
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\ndoes not contain\n  %s", err, w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "coibox.toml")
	if err := os.WriteFile(path, []byte("[listen]\nsmpt = \":25\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := "config " + path + `: unknown key "listen.smpt"`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load error = %v, want prefix %s", err, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("Load of a missing file: %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)

	c, src, err := Resolve("")
	if err != nil || src != LocalSource || c.Listen.SMTP != "127.0.0.1:2525" {
		t.Fatalf("no file: Resolve = %v, %q, %v; want the local profile", c, src, err)
	}

	if err := os.WriteFile("coibox.toml", []byte("hostname = \"here.example\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, src, err = Resolve("")
	if err != nil || src != "coibox.toml" || c.Hostname != "here.example" {
		t.Fatalf("./coibox.toml: Resolve = %v, %q, %v", c, src, err)
	}

	other := filepath.Join(dir, "other.toml")
	if err := os.WriteFile(other, []byte("hostname = \"there.example\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, src, err = Resolve(other)
	if err != nil || src != other || c.Hostname != "there.example" {
		t.Fatalf("explicit: Resolve = %v, %q, %v", c, src, err)
	}

	if _, _, err := Resolve(filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("explicit missing file: Resolve succeeded; it must not fall back")
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		err  string
	}{
		{"30MiB", 30 << 20, ""},
		{"500KB", 500_000, ""},
		{"1GiB", 1 << 30, ""},
		{"1024", 1024, ""},
		{"0", 0, ""},
		{"12 kib", 12 << 10, ""},
		{" 2TB ", 2_000_000_000_000, ""},
		{"7B", 7, ""},
		{"1gb", 1_000_000_000, ""},
		{"", 0, "size is empty"},
		{"MiB", 0, "must start with a whole number"},
		{"30M", 0, `unknown unit "M"`},
		{"30 XB", 0, `unknown unit "XB"`},
		{"1.5GiB", 0, "use a whole number"},
		{"-3", 0, "cannot be negative"},
		{"9999999999TiB", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseSize(%q) error = %v; want one containing %q", tt.in, err, tt.err)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"}, {1, "1"}, {1023, "1023"}, {1024, "1KiB"}, {30 * MiB, "30MiB"},
		{1000, "1KB"}, {500 * KB, "500KB"}, {GiB, "1GiB"}, {1536 * MiB, "1536MiB"}, {3 * TB, "3TB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if back, err := ParseSize(tt.in.String()); err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d back", tt.in.String(), back, err, tt.in)
		}
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"5m", 5 * time.Minute, ""},
		{"2h30m", 150 * time.Minute, ""},
		{"90s", 90 * time.Second, ""},
		{"0s", 0, ""},
		{"1.5h", 90 * time.Minute, ""},
		{"5", 0, "is not a duration"},
		{"3d", 0, "no day unit"},
		{"-1m", 0, "cannot be negative"},
		{"soon", 0, "is not a duration"},
	}
	for d, want := range map[time.Duration]string{
		0: "0s", 5 * time.Minute: "5m", time.Hour: "1h", 150 * time.Minute: "2h30m",
		90 * time.Second: "1m30s", 120 * time.Hour: "120h", time.Hour + time.Second: "1h0m1s",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		switch {
		case tt.err == "" && (err != nil || time.Duration(d) != tt.want):
			t.Errorf("Duration(%q) = %v, %v; want %v", tt.in, d, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("Duration(%q) error = %v; want one containing %q", tt.in, err, tt.err)
		}
	}
}

// TestEncodeRoundTrip checks that a Config written back as TOML (e.g. by a future
// "coibox config show") loads to the same Config.
func TestEncodeRoundTrip(t *testing.T) {
	c := Local()
	c.TLS.ExtraNames = []string{"a.example"}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		t.Fatal(err)
	}
	back, err := Parse("encoded", buf.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", back, c)
	}
}

// TestReadmeListsEveryKey keeps README-keys.md, from which the user documentation is
// generated, in step with the Config struct and Default.
func TestReadmeListsEveryKey(t *testing.T) {
	data, err := os.ReadFile("README-keys.md")
	if err != nil {
		t.Fatal(err)
	}
	defaults := literals(reflect.ValueOf(Default()).Elem(), "")
	// Defaults that depend on the machine or on other keys are described in words.
	described := map[string]bool{"hostname": true, "tls.acme_cache": true, "limits.imap_literal_size": true}

	inDoc := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		key := strings.Trim(cells[1], " `")
		inDoc[key] = true
		def := strings.TrimSpace(cells[2])
		if want, ok := defaults[key]; ok && !described[key] && def != "`"+want+"`" {
			t.Errorf("README-keys.md gives %s the default %s, Default has `%s`", key, def, want)
		}
	}
	for _, k := range Keys() {
		if !inDoc[k] {
			t.Errorf("README-keys.md does not list %q", k)
		}
		delete(inDoc, k)
	}
	for k := range inDoc {
		t.Errorf("README-keys.md lists %q, which is not a key", k)
	}
}

// literals writes each field of v as the TOML literal a config file would use.
func literals(v reflect.Value, prefix string) map[string]string {
	out := map[string]string{}
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		key := prefix + f.Tag.Get("toml")
		switch x := fv.Interface().(type) {
		case Size, Duration:
			out[key] = strconv.Quote(x.(fmt.Stringer).String())
		case string:
			out[key] = strconv.Quote(x)
		case int:
			out[key] = strconv.Itoa(x)
		case bool:
			out[key] = strconv.FormatBool(x)
		case []string:
			q := make([]string, len(x))
			for i, s := range x {
				q[i] = strconv.Quote(s)
			}
			out[key] = "[" + strings.Join(q, ", ") + "]"
		default:
			maps.Copy(out, literals(fv, key+"."))
		}
	}
	return out
}

func TestValidateAfterChange(t *testing.T) {
	c := Local()
	c.Listen.IMAP = c.Listen.SMTP
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "listen.imap") {
		t.Errorf("Validate = %v, want the port clash named", err)
	}
}

// TestUnderscoreNames: a leading "_" (self-signed test and LAN setups of chatmail)
// is accepted in hostname and tls.extra_names; "_" anywhere else is not.
func TestUnderscoreNames(t *testing.T) {
	c, err := Parse("t", []byte("hostname = \"_chat.lan\"\n[tls]\nextra_names = [\"_relay.test\"]\n"))
	if err != nil || c.Hostname != "_chat.lan" || c.TLS.ExtraNames[0] != "_relay.test" {
		t.Fatalf("leading underscore: %v %+v", err, c)
	}
	for _, h := range []string{"a._b.example", "_.example", "__x.example"} {
		if _, err := Parse("t", []byte("hostname = \""+h+"\"\n")); err == nil {
			t.Errorf("hostname %q accepted", h)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	got := ParsePrefixes([]string{"127.0.0.1", "::1", "10.1.2.3/8", "::ffff:192.0.2.1"})
	want := []string{"127.0.0.1/32", "::1/128", "10.0.0.0/8", "192.0.2.1/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("%d: %v, want %s", i, got[i], want[i])
		}
	}
}
