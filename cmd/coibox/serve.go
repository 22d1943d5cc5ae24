package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coibox/coibox/alpnmux"
	"github.com/coibox/coibox/authlimit"
	"github.com/coibox/coibox/coi"
	"github.com/coibox/coibox/coi/coiext"
	"github.com/coibox/coibox/coi/mxdeliv"
	"github.com/coibox/coibox/coi/push"
	"github.com/coibox/coibox/coi/retention"
	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/dkim"
	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/imapd"
	"github.com/coibox/coibox/metrics"
	"github.com/coibox/coibox/queue"
	"github.com/coibox/coibox/smtpd"
	"github.com/coibox/coibox/store"
	"github.com/coibox/coibox/tlsmgr"
	"github.com/coibox/coibox/webadmin"
)

// shutdownGrace is how long running SMTP transactions and HTTP requests may take to
// finish after SIGTERM before their connections are cut.
const shutdownGrace = 10 * time.Second

func cmdServe(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("serve")
	fs.StringVar(&configPath, "config", configPath, "config file")
	logFormat := fs.String("log-format", "", "text or json (overrides log_format)")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	if f := *logFormat; f != "" && f != "text" && f != "json" {
		return usagef("serve: --log-format %q is not text or json", f)
	}
	cfg, source, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	if *logFormat != "" {
		cfg.LogFormat = *logFormat
	}
	log := newLogger(e.stderr, cfg)

	// One server per data directory: a second would share the database but not the
	// change notifications, so its IMAP clients would never hear of the first's mail.
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	// Bind every socket before anything else: the kernel queues connections from here
	// on, so clients and service managers see the ports open within milliseconds, and
	// a port already in use fails the start before the store is touched.
	lns, err := listenAll(cfg)
	if err != nil {
		return err
	}
	defer lns.closeAll()
	log.Info("listening", "config", source, "startup", time.Since(e.start).Round(time.Microsecond).String())

	m := metrics.New()
	// The queue is made after the store and the pipeline; a delivery that queued mail
	// for a remote recipient wakes it through this reference, so the message leaves
	// now rather than at the queue's next scan.
	var queueRef atomic.Pointer[queue.Queue]
	kickQueue := func() {
		if q := queueRef.Load(); q != nil {
			q.Kick()
		}
	}
	s, fresh, err := openStore(ctx, cfg, source, store.Options{
		Logger:    log.With("pkg", "store"),
		Observe:   m.ObserveCommit,
		Summarize: imapd.Summarize,
	})
	if err != nil {
		return err
	}
	// The store closes last, after every listener and the queue have stopped.
	defer func() {
		if err := s.Close(); err != nil {
			log.Error("close store", "err", err)
		}
		log.Info("stopped")
	}()

	acmeRoots, err := loadRoots(cfg.TLS.ACMECAFile)
	if err != nil {
		return err
	}
	tlsm, err := tlsmgr.New(ctx, tlsmgr.Options{
		Mode:          tlsmgr.Mode(cfg.TLS.Mode),
		Hostname:      cfg.Hostname,
		ExtraNames:    cfg.TLS.ExtraNames,
		DataDir:       cfg.DataDir,
		CertFile:      cfg.TLS.CertFile,
		KeyFile:       cfg.TLS.KeyFile,
		ACMEEmail:     cfg.TLS.ACMEEmail,
		ACMEDirectory: cfg.TLS.ACMEDirectory,
		ACMECache:     cfg.TLS.ACMECache,
		ACMERoots:     acmeRoots,
		Domains:       func(ctx context.Context) ([]string, error) { return domainNames(ctx, s) },
		Logger:        log.With("pkg", "tlsmgr"),
	})
	if err != nil {
		return err
	}

	// Cached: every inbound message asks for its sender's SPF and DMARC records and
	// DKIM keys, mostly the same few domains' (see dnsx.WithCache).
	resolver := dnsx.New(cfg.DNS.Resolver).WithCache(dnsCacheEntries, time.Hour)
	keys := dkim.NewKeyStore(filepath.Join(cfg.DataDir, dkimDir))
	// Bounces and delay notices come from MAILER-DAEMON@<hostname>: with keys for the
	// hostname they are signed, as chatmail servers require (chatmail §6.3).
	if _, err := keys.Ensure(cfg.Hostname); err != nil {
		log.Warn("dkim: no keys for the hostname; bounces go unsigned", "hostname", cfg.Hostname, "err", err)
	}
	turnSrv := startTURN(ctx, cfg, s, log.With("pkg", "turn"))
	if turnSrv != nil {
		defer turnSrv.Close()
	}
	notifier, err := push.NewNotifier(s, cfg.Chat.PushNotifyURL, push.Options{Logger: log.With("pkg", "push")})
	if err != nil {
		return err
	}
	tokens := &push.Tokens{Store: s, Kick: notifier.Kick}
	var coiExt *coiext.Ext
	if cfg.COI.Enabled {
		coiExt = coiext.New(coiext.Options{Store: s, Root: cfg.COI.MailboxRoot, FilingDefault: cfg.COI.FilingDefault})
	}
	wp, err := startWebPush(cfg, s, resolver, log.With("pkg", "webpush"))
	if err != nil {
		return err
	}
	chat := coi.New(coi.Options{
		COI:                 coiExt,
		WebPush:             wp,
		Push:                tokens,
		Store:               s,
		DataDir:             cfg.DataDir,
		HideXChatmail:       !cfg.Chat.XChatmail,
		HideXDeltaPush:      !cfg.Chat.XDeltaPush,
		CreationsPerNetwork: cfg.Chat.AccountsPerNetwork,
		MaxSMTPRecipients:   cfg.Limits.Recipients,
		AppVersions:         cfg.Chat.AppVersions,
		TURN:                turnValue(cfg.Hostname, turnSrv, log.With("pkg", "turn")),
		Logger:              log.With("pkg", "coi"),
	})
	expiry := retention.New(retention.Options{Store: s, Logger: log.With("pkg", "retention")})
	pipeline := deliver.New(s, deliver.Options{
		Hostname:        cfg.Hostname,
		MaxRecipients:   cfg.Limits.Recipients,
		MaxMessageBytes: int64(cfg.Limits.MessageSize),
		RcptChecks:      []deliver.RcptCheck{chat.RcptCheck},
		SubmitChecks:    []deliver.Check{chat.SubmitCheck},
		// Encryption first (a cleartext message is refused as such), then origin; the
		// chat rules' Check strips DKIM-Signature from chatmail copies, so it comes
		// after the check that verifies it.
		Checks: []deliver.Check{
			chat.IncomingCheck,
			authCheck(resolver, cfg.Hostname, log.With("pkg", "mailauth"), chat.InboundDKIMOnly),
			chat.Check,
			coiCheck(coiExt),
		},
		Logger:  log.With("pkg", "deliver"),
		Metrics: m,
		Queued:  kickQueue,
		// After the commit: wake the recipients' devices first, then keep chatmail
		// mailboxes under 75 % of their size (chatmail §9, §10).
		Stored: func(ctx context.Context, m *deliver.Message, copies []store.Delivered) {
			chat.Stored(ctx, m, copies)
			for _, d := range copies {
				if err := expiry.AfterDelivery(context.WithoutCancel(ctx), d.AccountID); err != nil {
					log.Warn("retention: trim after delivery", "account", d.AccountID, "err", err)
				}
			}
		},
	})
	q := queue.New(s, queue.Options{
		Hostname:     cfg.Hostname,
		Resolver:     resolver,
		Signer:       keys,
		RemotePort:   cfg.Queue.RemotePort,
		Lifetime:     time.Duration(cfg.Queue.Lifetime),
		DelayNotice:  time.Duration(cfg.Queue.DelayNotice),
		MinRetry:     time.Duration(cfg.Queue.MinRetry),
		MaxRetry:     time.Duration(cfg.Queue.MaxRetry),
		Smarthost:    smarthost(cfg),
		LocalDeliver: localDSN(s, pipeline, cfg.Hostname),
		Dialer:       outboundDialer(cfg),
		Federation:   federation(cfg, resolver, log.With("pkg", "mxdeliv")),
		FederateFor:  chat.FederateFor,
		Logger:       log.With("pkg", "queue"),
		Metrics: queue.Metrics{
			Recipient:   m.OutboundRecipient,
			Connection:  m.OutboundConnection,
			Transaction: m.OutboundTransaction,
			DSN:         m.DSN,
		},
	})
	queueRef.Store(q)
	// One limiter for every password check, so a guesser cannot spread attempts over
	// SMTP and IMAP to get twice the allowance.
	limiter := authlimit.New(cfg.Limits.AuthFailuresPerIP, time.Duration(cfg.Limits.AuthFailureWindow)).
		WithPrefixes(cfg.Limits.IPv4Prefix, cfg.Limits.IPv6Prefix)

	// hardCtx ends every connection at once; it is cancelled only after the graceful
	// shutdown had its chance.
	hardCtx, hardStop := context.WithCancel(context.Background())
	defer hardStop()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	var shutdowns []func(context.Context) error

	// One count of connections for every SMTP listener: limits.smtp_connections is
	// the host's limit.
	smtpSlots := smtpd.NewSlots(cfg.Limits.SMTPConnections, cfg.Limits.SMTPConnectionsPerIP).
		WithPrefixes(cfg.Limits.IPv4Prefix, cfg.Limits.IPv6Prefix)
	handshake := time.Duration(cfg.Limits.TLSHandshakeTimeout)
	// Port 443 carries IMAP and submission beside HTTPS, told apart by ALPN
	// (chatmail spec §2.4); each goes to the same server as its own port.
	var mux *alpnmux.Mux
	if ln := lns.get("https"); ln != nil && cfg.Chat.ALPN443 {
		mux = alpnmux.New(ln, handshake, log.With("pkg", "alpnmux"))
	}
	serveMore := func(name string, serve func(context.Context, net.Listener) error, l net.Listener) {
		wg.Go(func() {
			if err := serve(hardCtx, l); err != nil && !errors.Is(err, smtpd.ErrServerClosed) && !errors.Is(err, imapd.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s on port 443: %w", name, err)
			}
		})
	}
	for _, l := range []struct {
		name string
		kind smtpd.Kind
	}{{"smtp", smtpd.MX}, {"submission", smtpd.Submission}, {"submissions", smtpd.Submissions}} {
		ln := lns.get(l.name)
		if ln == nil {
			continue
		}
		srv := smtpd.New(smtpd.Options{
			Kind:                l.kind,
			Hostname:            cfg.Hostname,
			TLSConfig:           tlsm.TLSConfig(),
			Pipeline:            pipeline,
			Store:               s,
			Authenticate:        chat.Authenticate,
			AuthLimiter:         limiter,
			MaxMessageBytes:     int64(cfg.Limits.MessageSize),
			MaxRecipients:       cfg.Limits.Recipients,
			Slots:               smtpSlots,
			ReadTimeout:         time.Duration(cfg.Limits.SMTPCommandTimeout),
			DataTimeout:         time.Duration(cfg.Limits.SMTPDataTimeout),
			TLSHandshakeTimeout: handshake,
			Logger:              log.With("pkg", "smtpd"),
			Metrics:             m,
		})
		if mux != nil && l.kind == smtpd.Submissions {
			serveMore(l.name, srv.Serve, mux.Route("smtp"))
		}
		// smtpd adds the TLS layer of submissions itself, after its connection limits.
		wg.Go(func() {
			if err := srv.Serve(hardCtx, ln); err != nil && !errors.Is(err, smtpd.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", l.name, err)
			}
		})
		shutdowns = append(shutdowns, srv.Shutdown)
	}

	// IMAP: imapd.New exists, so both IMAP listeners are wired here, sharing one count
	// of connections (limits.imap_connections is the host's limit).
	imapConns := imapd.NewConns(cfg.Limits.IMAPConnections, cfg.Limits.IMAPConnectionsPerIP,
		cfg.Limits.IPv4Prefix, cfg.Limits.IPv6Prefix)
	for _, l := range []struct {
		name     string
		implicit bool
	}{{"imap", false}, {"imaps", true}} {
		ln := lns.get(l.name)
		if ln == nil {
			continue
		}
		srv := imapd.New(imapd.Options{
			Hostname:    cfg.Hostname,
			Store:       s,
			TLSConfig:   tlsm.TLSConfig(),
			ImplicitTLS: l.implicit,
			Limits: imapd.Limits{
				MaxLine:             cfg.Limits.IMAPLineLength,
				MaxMessageSize:      int64(cfg.Limits.IMAPLiteralSize),
				MaxConnsPerIP:       cfg.Limits.IMAPConnectionsPerIP,
				MaxConnsPerAccount:  cfg.Limits.IMAPConnectionsPerAccount,
				IdleTimeout:         time.Duration(cfg.Limits.IMAPIdleTimeout),
				TLSHandshakeTimeout: handshake,
			},
			Conns:             imapConns,
			AuthLimiter:       limiter,
			Authenticate:      chat.Authenticate,
			ExtraCapabilities: chat.Capabilities,
			MetadataHook:      chat,
			MailboxHook:       chat.MailboxHook(),
			SeenHook:          chat.SeenHook(),
			Logger:            log.With("pkg", "imapd", "listener", l.name),
			Metrics: imapd.Metrics{
				Connections: func(delta int) {
					if delta > 0 {
						m.IMAPSessionStarted()
					} else {
						m.IMAPSessionEnded()
					}
				},
				Login: func(ok bool) {
					if !ok {
						m.AuthFailed(l.name)
					}
				},
			},
		})
		if mux != nil && l.implicit {
			serveMore(l.name, srv.ServeTLS, mux.Route("imap"))
		}
		wg.Go(func() {
			if err := srv.Serve(hardCtx, ln); err != nil && !errors.Is(err, imapd.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", l.name, err)
			}
		})
		shutdowns = append(shutdowns, srv.Shutdown)
	}

	onboard, err := chat.OnboardHandler(cfg.TLS.Mode == config.TLSSelfSigned)
	if err != nil {
		return err
	}
	var mxIn http.Handler
	if cfg.Chat.MXDelivInbound {
		mxIn = mxdeliv.NewHandler(mxdeliv.Options{Pipeline: pipeline, MaxBytes: int64(cfg.Limits.MessageSize), Logger: log.With("pkg", "mxdeliv")})
	}
	serves := func(ctx context.Context, domain string) (bool, error) {
		_, err := s.Domain(ctx, domain)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	web, err := webadmin.NewHandler(webadmin.Options{
		Admin: &webadmin.Admin{Store: s, DataDir: cfg.DataDir, Hostname: cfg.Hostname, Limiter: limiter,
			Dashboard: adminDashboard(cfg, s, tlsm, lns, e.start), Manage: adminManage(cfg, s, q)},
		MXDeliv:      mxIn,
		Onboard:      onboard,
		Metrics:      m.Handler(),
		MetricsToken: cfg.Listen.MetricsToken,
		Health: func(ctx context.Context) error {
			_, err := s.Domains(ctx)
			return err
		},
		Warnings: tlsm.Warnings,
		MTASTS:   &webadmin.MTASTS{Policy: stsPolicy(cfg), Serves: serves},
		Autoconfig: &webadmin.Autoconfig{
			Hostname:    cfg.Hostname,
			IMAPS:       listenPort(cfg.Listen.IMAPS),
			IMAP:        listenPort(cfg.Listen.IMAP),
			Submissions: listenPort(cfg.Listen.Submissions),
			Submission:  listenPort(cfg.Listen.Submission),
			ALPN443:     alpn443Port(cfg),
			Serves:      serves,
		},
		Logger: log.With("pkg", "webadmin"),
	})
	if err != nil {
		return err
	}
	for _, name := range []string{"http", "https"} {
		ln := lns.get(name)
		if ln == nil {
			continue
		}
		h := web
		if name == "http" {
			// With an HTTPS listener, plain HTTP only redirects there (but for the
			// paths RedirectToHTTPS names); ACME HTTP-01 challenges arrive on it
			// and are answered first.
			if cfg.Listen.HTTPS != "" {
				h = webadmin.RedirectToHTTPS(web, strconv.Itoa(listenPort(cfg.Listen.HTTPS)))
			}
			h = tlsm.HTTPHandler(h)
		}
		// Outermost: what a trusted proxy says about the client holds for all the rest.
		h = webadmin.TrustProxies(h, config.ParsePrefixes(cfg.Listen.TrustedProxies))
		if name == "https" {
			if mux != nil {
				ln = mux.Default()
				wg.Go(func() {
					if err := mux.Serve(hardCtx); err != nil {
						errc <- fmt.Errorf("serve port 443: %w", err)
					}
				})
			}
			ln = newHandshakeListener(ln, tlsm.TLSConfig(), handshake, log.With("pkg", "webadmin"))
		}
		srv := &http.Server{
			Handler: h,
			// Never shorter than the handshake's own deadline, which it would cut.
			ReadHeaderTimeout: max(10*time.Second, handshake),
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", name, err)
			}
		})
		shutdowns = append(shutdowns, srv.Shutdown)
	}

	// The notifier stops with the queue: both only send, and what is pending stays
	// in the store for the next start.
	pushDone := make(chan struct{})
	queueCtx, queueStop := context.WithCancel(context.Background())
	webpushDone := make(chan struct{})
	go func() {
		defer close(webpushDone)
		if wp != nil {
			_ = wp.Run(queueCtx) // logs its own failures; returns when the context ends
		}
	}()
	// Certificates for the server's names are asked for now, not at the first
	// handshake, and failed attempts retried.
	go tlsm.Run(queueCtx)
	retentionDone := make(chan struct{})
	go func() {
		defer close(retentionDone)
		_ = expiry.Run(queueCtx) // logs its own failures; returns when the context ends
	}()
	go func() {
		defer close(pushDone)
		if err := notifier.Run(queueCtx); err != nil && queueCtx.Err() == nil {
			log.Error("push notifier stopped", "err", err)
		}
	}()
	defer queueStop()
	queueDone := make(chan struct{})
	go func() {
		defer close(queueDone)
		if err := q.Run(queueCtx); err != nil {
			errc <- fmt.Errorf("run queue: %w", err)
		}
	}()

	if source == config.LocalSource {
		printWelcome(ctx, e.stdout, cfg, s, fresh)
		if u, err := adminSetupURL(ctx, s, cfg.DataDir, adminBase(cfg)); err != nil {
			log.Warn("admin: make setup token", "err", err)
		} else if u != "" {
			fmt.Fprintf(e.stdout, "Set the admin password (the link works once):\n  %s\n\n", u)
		}
	}
	log.Info("ready", "hostname", cfg.Hostname, "data_dir", cfg.DataDir, "listeners", strings.Join(lns.names, ","),
		"startup", time.Since(e.start).Round(time.Microsecond).String())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", shutdownGrace.String())
	case runErr = <-errc:
		log.Error("shutting down after a failure", "err", runErr)
	}
	// Stop accepting everywhere at once and let running transactions and commands
	// finish; at the deadline what is left is cut off.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var swg sync.WaitGroup
	for _, sd := range shutdowns {
		swg.Go(func() {
			if err := sd(sctx); err != nil {
				log.Warn("shutdown", "err", err)
			}
		})
	}
	swg.Wait()
	hardStop()
	wg.Wait()
	// Deliveries in flight stop and stay queued for the next start.
	queueStop()
	<-queueDone
	<-pushDone
	<-retentionDone
	<-webpushDone
	return runErr
}

// newLogger builds the process logger from log_format and log_level.
func newLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// listeners are the bound sockets by listener name (the listen.* key).
type listeners struct {
	names []string
	byKey map[string]net.Listener
}

func (l *listeners) get(name string) net.Listener { return l.byKey[name] }

func (l *listeners) closeAll() {
	for _, ln := range l.byKey {
		ln.Close()
	}
}

// listenAll binds every configured listener, closing the ones bound so far if one
// fails.
func listenAll(cfg *config.Config) (*listeners, error) {
	ls := &listeners{byKey: map[string]net.Listener{}}
	for _, l := range []struct{ name, addr string }{
		{"smtp", cfg.Listen.SMTP},
		{"submission", cfg.Listen.Submission},
		{"submissions", cfg.Listen.Submissions},
		{"imap", cfg.Listen.IMAP},
		{"imaps", cfg.Listen.IMAPS},
		{"http", cfg.Listen.HTTP},
		{"https", cfg.Listen.HTTPS},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			ls.closeAll()
			return nil, fmt.Errorf("listen.%s: %w", l.name, err)
		}
		ls.names = append(ls.names, l.name)
		ls.byKey[l.name] = ln
	}
	return ls, nil
}

// printWelcome tells someone trying the local profile how to reach the server and how
// to get an account, as long as there is none yet.
func printWelcome(ctx context.Context, w io.Writer, cfg *config.Config, s *store.Store, fresh bool) {
	accts, err := s.Accounts(ctx)
	if err != nil || (len(accts) > 0 && !fresh) {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\ncoibox is running with the local profile (data in %s, domain %s).\n", cfg.DataDir, localDomain)
	for _, l := range []struct{ what, addr string }{
		{"SMTP (MX)", cfg.Listen.SMTP},
		{"submission (STARTTLS)", cfg.Listen.Submission},
		{"submissions (TLS)", cfg.Listen.Submissions},
		{"IMAP (STARTTLS)", cfg.Listen.IMAP},
		{"IMAPS (TLS)", cfg.Listen.IMAPS},
		{"HTTP (/metrics, /healthz)", cfg.Listen.HTTP},
	} {
		if l.addr != "" {
			fmt.Fprintf(&b, "  %-26s %s\n", l.what, l.addr)
		}
	}
	fmt.Fprintf(&b, "The certificate is self-signed: tell your client to accept it.\n")
	fmt.Fprintf(&b, "Add an account (prints a generated password):\n  coibox account add you@%s\n\n", localDomain)
	_, _ = io.WriteString(w, b.String())
}

// domainNames lists the served domains' names, for certificates in ACME mode.
func domainNames(ctx context.Context, s *store.Store) ([]string, error) {
	ds, err := s.Domains(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	return names, nil
}

// dnsCacheEntries bounds the resolver's answer cache (a few MiB at most).
const dnsCacheEntries = 10000

// loadRoots reads a PEM file of CA certificates (tls.acme_ca_file); "" means the
// system's roots (nil).
func loadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tls.acme_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("read tls.acme_ca_file: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// listenPort is the port of a listen address (":993" → 993), 0 for none.
func listenPort(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}

// alpn443Port is the HTTPS port when it carries IMAP and submission as well.
func alpn443Port(cfg *config.Config) int {
	if !cfg.Chat.ALPN443 {
		return 0
	}
	return listenPort(cfg.Listen.HTTPS)
}
