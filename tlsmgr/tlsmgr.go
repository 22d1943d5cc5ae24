// Package tlsmgr provides the certificates of every TLS listener (SMTP, IMAP, HTTPS) from
// one source: a persisted self-signed certificate, files on disk, or ACME (autocert).
package tlsmgr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Mode says where certificates come from; the values match config's tls.mode.
type Mode string

// The modes.
const (
	SelfSigned Mode = "selfsigned"
	Files      Mode = "files"
	ACME       Mode = "acme"
)

// filesCheckInterval bounds how often a handshake stats the certificate files, so that
// reloading needs neither a goroutine nor a stat per connection.
const filesCheckInterval = 30 * time.Second

// Options configures New. Only the fields of the chosen Mode matter.
type Options struct {
	Mode Mode
	// Hostname is the primary name: the certificate served when a client sends no SNI.
	Hostname string
	// ExtraNames are further names the certificate (or, for ACME, certificates) cover.
	ExtraNames []string
	// DataDir holds the self-signed certificate in DataDir/tls, and is the ACME cache's
	// parent when ACMECache is empty.
	DataDir string
	// CertFile and KeyFile are the PEM files of mode Files.
	CertFile, KeyFile string
	// ACMEEmail is the contact address for the ACME account; it may be empty.
	ACMEEmail string
	// ACMEDirectory is the CA's directory URL; empty means Let's Encrypt production.
	ACMEDirectory string
	// ACMECache is the autocert cache directory; empty means DataDir/acme.
	ACMECache string
	// ACMERoots, if set, are the only roots trusted for the CA's own HTTPS (a private
	// CA); nil means the system's.
	ACMERoots *x509.CertPool
	// ACMERenewBefore is how long before expiry ACME certificates are renewed; zero
	// means a third of their lifetime, at most 30 days (autocert's default).
	ACMERenewBefore time.Duration
	// Domains lists the mail domains served; in mode ACME, mta-sts.<domain> and
	// autoconfig.<domain> and autodiscover.<domain> may get certificates. It is called during handshakes for
	// names with those prefixes, so it should be cheap. May be nil.
	Domains func(context.Context) ([]string, error)
	// Logger receives certificate events; nil discards them.
	Logger *slog.Logger
}

// CertStatus describes one certificate for the admin UI.
type CertStatus struct {
	Mode Mode
	// Names are the DNS names and IP addresses the certificate covers or, if there is
	// no certificate yet, the name it is wanted for.
	Names []string
	// Issuer is the issuer's distinguished name; empty without a certificate.
	Issuer string
	// NotAfter is when the certificate expires; zero without a certificate.
	NotAfter time.Time
	// Fallback is set in mode ACME while the name is served the self-signed
	// certificate because the CA has not issued one yet.
	Fallback bool
	// LastError is the most recent failure to load, reload or obtain this certificate,
	// cleared by the next success; LastErrorTime is when it happened.
	LastError     string
	LastErrorTime time.Time
}

// Manager hands out certificates. It is safe for concurrent use.
type Manager struct {
	mode     Mode
	hostname string
	names    []string // hostname first, then the extra names; normalized
	log      *slog.Logger
	base     *tls.Config
	noALPN   *tls.Config // base without NextProtos, for clients offering no protocol we know

	// cert is the certificate of modes SelfSigned and Files.
	cert atomic.Pointer[tls.Certificate]

	// refreshMu serializes the self-signed renewal and file reload checks; nextCheck
	// (unix nanoseconds) lets handshakes skip them without taking the lock.
	refreshMu  sync.Mutex
	nextCheck  atomic.Int64
	checkEvery time.Duration

	// mode SelfSigned, and the fallback of mode ACME
	dir string

	// mode Files
	certFile, keyFile string
	stamps            [2]fileStamp

	// mode ACME
	acm       *autocert.Manager
	acmeCache string
	acmeRetry time.Duration
	domains   func(context.Context) ([]string, error)
	obtainMu  sync.Mutex
	obtaining map[string]*obtainState // by autocert cache key

	statusMu sync.Mutex
	lastErr  map[string]errRecord         // by name in mode ACME, "" otherwise
	issued   map[string]*x509.Certificate // mode ACME: leaf last served per name
	leaves   map[string]*x509.Certificate // mode ACME: leaf last served per cache key
	fellBack map[string]bool              // mode ACME: names served the fallback since their last certificate
}

type errRecord struct {
	msg string
	at  time.Time
}

// New sets up the certificate source of o.Mode. For SelfSigned it loads or creates the
// certificate, for Files it loads the files; both fail here rather than at the first
// handshake. ACME contacts the CA only when a certificate is first needed.
func New(ctx context.Context, o Options) (*Manager, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("set up certificates: %w", err)
	}
	if o.Hostname == "" {
		return nil, errors.New("set up certificates: no hostname")
	}
	m := &Manager{
		mode:       o.Mode,
		hostname:   normalize(o.Hostname),
		log:        o.Logger,
		checkEvery: filesCheckInterval,
		lastErr:    map[string]errRecord{},
		issued:     map[string]*x509.Certificate{},
		leaves:     map[string]*x509.Certificate{},
		fellBack:   map[string]bool{},
		obtaining:  map[string]*obtainState{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("mode", string(o.Mode))
	m.domains = o.Domains
	m.names = []string{m.hostname}
	for _, n := range o.ExtraNames {
		if n = normalize(n); n != "" && !slices.Contains(m.names, n) {
			m.names = append(m.names, n)
		}
	}

	protos := []string{"h2", "http/1.1", "imap", "smtp"}
	switch o.Mode {
	case SelfSigned:
		if o.DataDir == "" {
			return nil, errors.New("set up self-signed certificate: no data directory")
		}
		m.dir = o.DataDir
		if err := m.loadOrCreateSelfSigned(time.Now()); err != nil {
			return nil, fmt.Errorf("set up self-signed certificate: %w", err)
		}
	case Files:
		if o.CertFile == "" || o.KeyFile == "" {
			return nil, errors.New("set up certificate files: both a certificate and a key file are needed")
		}
		m.certFile, m.keyFile = o.CertFile, o.KeyFile
		if err := m.loadFiles(); err != nil {
			return nil, fmt.Errorf("set up certificate files: %w", err)
		}
	case ACME:
		m.acmeCache = o.ACMECache
		if m.acmeCache == "" {
			if o.DataDir == "" {
				return nil, errors.New("set up ACME: no cache directory")
			}
			m.acmeCache = o.DataDir + "/acme"
		}
		// The fallback lives beside the store's data, or in the cache directory.
		m.dir = o.DataDir
		if m.dir == "" {
			m.dir = m.acmeCache
		}
		if err := m.loadOrCreateSelfSigned(time.Now()); err != nil {
			return nil, fmt.Errorf("set up fallback certificate: %w", err)
		}
		m.acmeRetry = firstACMERetry
		dir := o.ACMEDirectory
		if dir == "" {
			dir = autocert.DefaultACMEDirectory
		}
		client := &acme.Client{DirectoryURL: dir, UserAgent: "coibox"}
		if o.ACMERoots != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: o.ACMERoots, MinVersion: tls.VersionTLS12}
			client.HTTPClient = &http.Client{Transport: tr}
		}
		m.acm = &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(m.acmeCache),
			HostPolicy: m.hostPolicy,
			Email:      o.ACMEEmail,
			Client:     client,
		}
		// The CA's TLS-ALPN-01 validation connects with only this protocol.
		protos = append(protos, acme.ALPNProto)
	default:
		return nil, fmt.Errorf("set up certificates: unknown mode %q", o.Mode)
	}

	m.base = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetCertificate:     m.getCertificate,
		GetConfigForClient: m.configForClient,
		NextProtos:         protos,
	}
	m.noALPN = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: m.getCertificate}
	return m, nil
}

// TLSConfig returns a new copy of the configuration every listener uses. Copies share
// the certificates, so a renewal or reload reaches all listeners at once; each caller
// may change its own copy. NextProtos offers "h2", "http/1.1", "imap" and "smtp" (and
// "acme-tls/1" in mode ACME); a client offering none of them still connects, as if it
// had not used ALPN.
func (m *Manager) TLSConfig() *tls.Config { return m.base.Clone() }

// HTTPHandler answers ACME HTTP-01 challenges on the plain HTTP listener in mode ACME
// and passes every other request to fallback. In other modes it is fallback. A nil
// fallback answers 404.
func (m *Manager) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	if m.acm == nil {
		return fallback
	}
	return m.acm.HTTPHandler(fallback)
}

// configForClient drops ALPN for clients that offer only protocols we do not list,
// since crypto/tls would otherwise abort their handshake, and a mail client offering,
// say, "imap/4rev1" should still get its connection.
func (m *Manager) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if len(hello.SupportedProtos) == 0 {
		return nil, nil
	}
	for _, p := range hello.SupportedProtos {
		if slices.Contains(m.base.NextProtos, p) {
			return nil, nil
		}
	}
	return m.noALPN, nil
}

// getCertificate serves the certificate for a handshake. A client that sends no SNI,
// as Delta Chat and other clients do in STARTTLS on IMAP and submission, gets the
// certificate for the hostname.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.acm != nil {
		return m.acmeCertificate(hello)
	}
	return m.fallback(), nil
}

// fallback returns the self-signed certificate (mode SelfSigned's, and mode ACME's
// until the CA issues one) or mode Files' certificate, refreshed when due.
func (m *Manager) fallback() *tls.Certificate {
	m.maybeRefresh()
	return m.cert.Load()
}

// maybeRefresh renews the self-signed certificate or reloads the certificate files when
// due, at most once per checkEvery. A failure keeps the current certificate.
func (m *Manager) maybeRefresh() {
	now := time.Now()
	if now.UnixNano() < m.nextCheck.Load() {
		return
	}
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	if now.UnixNano() < m.nextCheck.Load() {
		return // another handshake just checked
	}
	m.nextCheck.Store(now.Add(m.checkEvery).UnixNano())
	var err error
	switch m.mode {
	case SelfSigned, ACME:
		if leaf := m.cert.Load().Leaf; needsRenewal(leaf, now) || !sameNames(leaf, m.selfSignedNames()) {
			err = m.loadOrCreateSelfSigned(now)
		}
	case Files:
		err = m.reloadFilesIfChanged()
	}
	if err != nil {
		m.log.Error("refresh certificate", "err", err)
	}
}

// setErr records err (or its absence) for Status under the given name.
func (m *Manager) setErr(name string, err error) {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	if err == nil {
		delete(m.lastErr, name)
		return
	}
	m.lastErr[name] = errRecord{msg: err.Error(), at: time.Now()}
}

// Status describes the certificates in use, primary first.
func (m *Manager) Status() []CertStatus {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	if m.acm == nil {
		s := CertStatus{Mode: m.mode}
		if c := m.cert.Load(); c != nil && c.Leaf != nil {
			s = describe(m.mode, c.Leaf)
		}
		if e, ok := m.lastErr[""]; ok {
			s.LastError, s.LastErrorTime = e.msg, e.at
		}
		return []CertStatus{s}
	}

	names := slices.Clone(m.names)
	var more []string
	for n := range m.issued {
		if !slices.Contains(names, n) {
			more = append(more, n)
		}
	}
	for n := range m.lastErr {
		if !slices.Contains(names, n) && !slices.Contains(more, n) {
			more = append(more, n)
		}
	}
	slices.Sort(more)
	var out []CertStatus
	for _, n := range append(names, more...) {
		leaf := m.issued[n]
		if leaf == nil {
			// Certificates obtained before this start are in the cache but have not
			// been served yet.
			leaf = cachedLeaf(m.acmeCache, n)
		}
		s := CertStatus{Mode: ACME, Names: []string{n}}
		if leaf != nil {
			s = describe(ACME, leaf)
		}
		s.Fallback = m.fellBack[n]
		if e, ok := m.lastErr[n]; ok {
			s.LastError, s.LastErrorTime = e.msg, e.at
		}
		out = append(out, s)
	}
	return out
}

// Warnings says, one line each, what an operator should know about the certificates:
// names still served the self-signed fallback in mode ACME, and the last error of
// each. /healthz shows them.
func (m *Manager) Warnings() []string {
	var out []string
	for _, s := range m.Status() {
		switch {
		case s.Fallback && s.LastError != "":
			out = append(out, fmt.Sprintf("tls: %s is served a self-signed certificate until ACME issues one (last error %s: %s)",
				s.Names[0], s.LastErrorTime.UTC().Format(time.RFC3339), s.LastError))
		case s.Fallback:
			out = append(out, fmt.Sprintf("tls: %s is served a self-signed certificate until ACME issues one", s.Names[0]))
		case s.LastError != "":
			out = append(out, fmt.Sprintf("tls: %s: %s", strings.Join(s.Names, ", "), s.LastError))
		}
	}
	return out
}

func describe(mode Mode, leaf *x509.Certificate) CertStatus {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return CertStatus{Mode: mode, Names: names, Issuer: leaf.Issuer.String(), NotAfter: leaf.NotAfter}
}

// normalize puts a DNS name in the form names are compared in: lower case, no
// trailing dot.
func normalize(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }
