package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/coibox/coibox/internal/testutil"
	"github.com/coibox/coibox/store"
	"github.com/miekg/dns"
)

// benchDomain is the mail domain a started server serves; benchSender's domain is the
// one benchmark mail claims to come from.
const (
	benchDomain = "bench.example"
	benchSender = "sender@sender.example"
)

// chatDomain is the chatmail domain a server started with serverOptions.chatmail
// serves besides benchDomain; its accounts are made by first logins.
const chatDomain = "chat.bench.example"

// serverOptions shape the coibox a benchmark starts.
type serverOptions struct {
	bin      string // coibox binary; "" builds github.com/coibox/coibox/cmd/coibox
	users    int    // accounts user1…userN@benchDomain
	logLevel string
	keep     bool      // keep the temporary directory (data, config, logs)
	log      io.Writer // where the server's output goes besides its log file; nil: only the file
	// limits holds extra lines for the config's [limits] table.
	limits string
	// chatmail also serves chatDomain, made with `domain add --chatmail`, with its
	// send rate limit and resource guard off and the server's per-network account
	// creation limit raised, so that the benchmark measures neither the limiter nor
	// the guard; the embedded TURN server is off. It also listens on HTTPS
	// (listen.https, the self-signed certificate), where /mxdeliv takes mail from
	// other chatmail servers.
	chatmail bool
	// imapPerIP and imapPerAccount, when above the defaults (2000 and the config's
	// own), raise limits.imap_connections_per_ip and _per_account.
	imapPerIP, imapPerAccount int
	// dns holds records the stub DNS serves besides stubRecords.
	dns []dns.RR
}

// benchServer is a coibox started for a benchmark, on its own ports and data.
type benchServer struct {
	opts    serverOptions
	dir     string
	bin     string
	config  string
	dataDir string
	addr    testutil.Listeners
	dns     *stubDNS
	proc    *testutil.ServerProc
	logFile *os.File
	// users are the account addresses, passwords theirs by address.
	users     []string
	passwords map[string]string
}

// startServer prepares a temporary directory with a config, the benchmark domain and
// accounts, then starts `coibox serve` and waits until its listeners accept.
func startServer(ctx context.Context, o serverOptions) (_ *benchServer, err error) {
	dir, err := os.MkdirTemp("", "coibench-")
	if err != nil {
		return nil, fmt.Errorf("create temporary directory: %w", err)
	}
	s := &benchServer{opts: o, dir: dir, passwords: map[string]string{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.bin = o.bin
	if s.bin == "" {
		s.bin = filepath.Join(dir, "coibox")
		if err := testutil.Build(s.bin, "github.com/coibox/coibox/cmd/coibox"); err != nil {
			return nil, err
		}
	}
	if s.dns, err = startStubDNS(o.dns); err != nil {
		return nil, err
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	// Admin commands refuse a data directory that does not exist.
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := s.admin(ctx, "", "domain", "add", benchDomain); err != nil {
		return nil, err
	}
	if o.chatmail {
		if err := s.admin(ctx, "", "domain", "add", "--chatmail", chatDomain); err != nil {
			return nil, err
		}
		if err := s.admin(ctx, "", "domain", "set", chatDomain, "resource_guard=off", "send_rate=100000/min,burst=100000"); err != nil {
			return nil, err
		}
	}
	for i := range o.users {
		addr := fmt.Sprintf("user%d@%s", i+1, benchDomain)
		pw := fmt.Sprintf("bench-password-%d", i+1)
		if err := s.admin(ctx, pw+"\n", "account", "add", addr); err != nil {
			return nil, err
		}
		s.users = append(s.users, addr)
		s.passwords[addr] = pw
	}
	if s.logFile, err = os.Create(filepath.Join(dir, "coibox.log")); err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		// Closed after all are open, so that the ports differ.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (s *benchServer) writeConfig() error {
	p, err := freePorts(7)
	if err != nil {
		return err
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", p[i]) }
	s.addr = testutil.Listeners{SMTP: addr(0), Submission: addr(1), Submissions: addr(2), IMAP: addr(3), IMAPS: addr(4), HTTP: addr(5)}
	if s.opts.chatmail {
		s.addr.HTTPS = addr(6)
	}
	limits := fmt.Sprintf("imap_connections_per_ip = %d\n", max(2000, s.opts.imapPerIP))
	if s.opts.imapPerAccount > 0 {
		limits += fmt.Sprintf("imap_connections_per_account = %d\n", s.opts.imapPerAccount)
	}
	s.dataDir = filepath.Join(s.dir, "data")
	level := s.opts.logLevel
	if level == "" {
		level = "info"
	}
	// The connection limits are raised so that concurrency 64 from one machine is not
	// refused; everything else keeps its default, as a real installation would.
	text := fmt.Sprintf(`hostname = "localhost"
data_dir = %q
log_level = %q

%s
[tls]
mode = "selfsigned"

[dns]
resolver = %q

[limits]
smtp_connections = 4000
smtp_connections_per_ip = 2000
%s%s
`, s.dataDir, level, s.addr.TOML(), s.dns.addr, limits, s.opts.limits)
	if s.opts.chatmail {
		// Every first login comes from 127.0.0.1, one /24.
		text += "\n[chat]\nturn_listen = \"\"\naccounts_per_network = 100000\n"
	}
	s.config = filepath.Join(s.dir, "coibox.toml")
	if err := os.WriteFile(s.config, []byte(text), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// admin runs an admin subcommand of the server's binary on its config.
func (s *benchServer) admin(ctx context.Context, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"--config", s.config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("coibox %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return nil
}

// start runs `coibox serve` and waits for its SMTP listener, which is what the time to
// listen is measured on.
func (s *benchServer) start(ctx context.Context) error {
	var log io.Writer = s.logFile
	if s.opts.log != nil {
		log = io.MultiWriter(s.logFile, s.opts.log)
	}
	p, err := testutil.StartServerProc(ctx, s.bin, s.config, []string{s.addr.SMTP}, 30*time.Second, log)
	if err != nil {
		return err
	}
	s.proc = p
	return p.WaitHealthy(ctx, "http://"+s.addr.HTTP+"/healthz", 30*time.Second)
}

// mainToListen reads the server's own start-up figure from its "listening" log line
// (`startup=2.5ms`), in ms; 0 if the line is not there (log level above info).
func (s *benchServer) mainToListen() float64 {
	for line := range strings.Lines(s.proc.Output()) {
		if !strings.Contains(line, "msg=listening") {
			continue
		}
		_, v, ok := strings.Cut(line, " startup=")
		if !ok {
			return 0
		}
		v, _, _ = strings.Cut(strings.TrimSpace(v), " ")
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0
		}
		return ms(d)
	}
	return 0
}

// stop ends the server with SIGTERM.
func (s *benchServer) stop() error {
	if s.proc == nil {
		return nil
	}
	code, err := s.proc.Stop(20 * time.Second)
	s.proc = nil
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("server exited with code %d", code)
	}
	return nil
}

// Close stops the server and removes its directory unless asked to keep it.
func (s *benchServer) Close() error {
	err := s.stop()
	if s.dns != nil {
		s.dns.Close()
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
	if s.opts.keep {
		fmt.Fprintf(os.Stderr, "coibench: kept %s\n", s.dir)
	} else {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	return err
}

// storedMessages counts the messages in the store. Reading the database beside the
// running server is safe: SQLite's WAL mode lets readers in while the server writes.
func storedMessages(ctx context.Context, dataDir string) (int64, error) {
	st, err := store.Open(ctx, dataDir, store.Options{ReadConns: 1})
	if err != nil {
		return 0, fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	stats, err := st.Stats(ctx)
	if err != nil {
		return 0, err
	}
	return stats.Messages, nil
}
