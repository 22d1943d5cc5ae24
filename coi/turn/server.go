package turn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/turn/v4"
)

// Options configures a Server.
type Options struct {
	// ListenAddr is host:port for both the UDP and the TCP listener. An empty host
	// listens on every address; port 0 (tests) picks one port free for both.
	ListenAddr string
	// PublicIP is the relay address given to clients, an IPv4 address (pion relays
	// over UDP/IPv4). Defaults to the listen host when that is a specific IPv4 address.
	PublicIP net.IP
	// Realm is the TURN realm; defaults to "coibox".
	Realm string
	// SecretFile holds the credential secret; created if missing (see LoadSecret).
	SecretFile string
	// AllowLoopbackPeers lets clients relay to loopback and the server's own
	// addresses. For tests on one host only: on a real server it exposes local services.
	AllowLoopbackPeers bool
	// MaxAllocationsPerUser caps live allocations per user: a username together with
	// the client's IPv4 address or IPv6 /64 (see users); 0 means no limit.
	MaxAllocationsPerUser int
	// MaxBandwidthPerUser caps a user's relayed traffic, both directions and all its
	// allocations together, in bytes per second; 0 means no limit.
	MaxBandwidthPerUser int64
	// RelayMinPort and RelayMaxPort restrict relay sockets to a port range a firewall
	// can open; both 0 means any ephemeral port.
	RelayMinPort, RelayMaxPort int
	Logger                     *slog.Logger
}

// Server is a running TURN server on UDP and TCP.
type Server struct {
	log    *slog.Logger
	secret *Secret
	pion   *turn.Server
	udp    net.PacketConn
	tcp    *trackingListener
	port   int

	closeOnce sync.Once
	closeErr  error
}

// New loads or creates the secret, listens on opts.ListenAddr (UDP and TCP) and
// starts serving. ctx bounds only the setup; the server runs until Close.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Realm == "" {
		opts.Realm = "coibox"
	}
	if opts.SecretFile == "" {
		return nil, errors.New("start turn server: no secret file")
	}
	if opts.MaxAllocationsPerUser < 0 || opts.MaxBandwidthPerUser < 0 {
		return nil, errors.New("start turn server: negative per-user limit")
	}
	host, portStr, err := net.SplitHostPort(opts.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("parse turn listen address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("parse turn listen address %q: bad port", opts.ListenAddr)
	}
	var listenIP netip.Addr
	if host != "" {
		// A name could resolve to anything at any time; the relay binds to this address.
		if listenIP, err = netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("parse turn listen address %q: host is not an IP address", opts.ListenAddr)
		}
		listenIP = listenIP.Unmap()
	}
	public, err := publicAddr(opts.PublicIP, listenIP)
	if err != nil {
		return nil, err
	}
	if err := checkPortRange(opts.RelayMinPort, opts.RelayMaxPort); err != nil {
		return nil, err
	}
	secret, err := LoadSecret(opts.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("start turn server: %w", err)
	}

	log := opts.Logger.With("listener", "turn")
	own := ownAddrs(log, listenIP)
	filter := newPeerFilter(opts.AllowLoopbackPeers, public, own)

	// Relay sockets bind where the listener does, so a test server stays on loopback.
	bind := "0.0.0.0"
	if listenIP.Is4() && !listenIP.IsUnspecified() {
		bind = listenIP.String()
	}
	var inner turn.RelayAddressGenerator = &turn.RelayAddressGeneratorStatic{
		RelayAddress: net.IP(public.AsSlice()),
		Address:      bind,
	}
	if opts.RelayMinPort != 0 {
		inner = &turn.RelayAddressGeneratorPortRange{
			RelayAddress: net.IP(public.AsSlice()),
			Address:      bind,
			MinPort:      uint16(opts.RelayMinPort),
			MaxPort:      uint16(opts.RelayMaxPort),
			// Random tries in the range; a busy range needs more than pion's default 10.
			MaxRetries: 50,
		}
	}
	gen := newRelayGenerator(inner, filter)
	us := newUsers(opts.MaxAllocationsPerUser, opts.MaxBandwidthPerUser)

	udp, tcp, err := listen(ctx, host, port)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:    log,
		secret: secret,
		udp:    udp,
		tcp:    &trackingListener{Listener: tcp, conns: map[net.Conn]struct{}{}},
		port:   udp.LocalAddr().(*net.UDPAddr).Port,
	}

	permit := func(client net.Addr, peer net.IP) bool {
		if filter.permit(peer) {
			return true
		}
		log.Debug("turn peer refused", "client", client.String(), "peer", peer.String())
		return false
	}
	cfg := turn.ServerConfig{
		Realm:         opts.Realm,
		LoggerFactory: pionLogs{log: log},
		AuthHandler:   s.authenticate,
		QuotaHandler: func(username, _ string, src net.Addr) bool {
			if us.reserve(keyOf(username, src), time.Now()) {
				return true
			}
			log.Debug("turn allocation quota reached", "client", src.String(), "username", username)
			return false
		},
		EventHandler: turn.EventHandler{
			OnAllocationCreated: func(src, _ net.Addr, protocol, username, _ string, relay net.Addr, _ int) {
				b := us.created(keyOf(username, src), time.Now())
				if ua, ok := relay.(*net.UDPAddr); ok {
					gen.attach(ua.Port, b)
				}
				log.Debug("turn allocation created", "client", src.String(), "protocol", protocol, "relay", relay.String())
			},
			OnAllocationDeleted: func(src, _ net.Addr, protocol, username, _ string) {
				us.deleted(keyOf(username, src))
				log.Debug("turn allocation deleted", "client", src.String(), "protocol", protocol)
			},
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            udp,
			RelayAddressGenerator: gen,
			PermissionHandler:     permit,
		}},
		ListenerConfigs: []turn.ListenerConfig{{
			Listener:              s.tcp,
			RelayAddressGenerator: gen,
			PermissionHandler:     permit,
		}},
	}
	s.pion, err = turn.NewServer(cfg)
	if err != nil {
		udp.Close()
		tcp.Close()
		return nil, fmt.Errorf("start turn server: %w", err)
	}
	log.Info("turn server listening", "udp", udp.LocalAddr().String(), "tcp", tcp.Addr().String(),
		"relay", public.String(), "loopback_peers", opts.AllowLoopbackPeers)
	return s, nil
}

func publicAddr(ip net.IP, listenIP netip.Addr) (netip.Addr, error) {
	if ip == nil {
		if !listenIP.Is4() || listenIP.IsUnspecified() {
			return netip.Addr{}, errors.New("start turn server: no public IPv4 address for relays")
		}
		return listenIP, nil
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok || !a.Unmap().Is4() || a.Unmap().IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("start turn server: public address %v is not a usable IPv4 address", ip)
	}
	return a.Unmap(), nil
}

func checkPortRange(lo, hi int) error {
	switch {
	case lo == 0 && hi == 0:
		return nil
	case lo <= 0 || hi > 65535 || lo > hi:
		return fmt.Errorf("start turn server: bad relay port range %d-%d", lo, hi)
	}
	return nil
}

// ownAddrs lists the host's addresses, which clients must not relay to: a datagram
// from the relay would reach local services as if from the host itself.
func ownAddrs(log *slog.Logger, listenIP netip.Addr) []netip.Addr {
	var own []netip.Addr
	if listenIP.IsValid() {
		own = append(own, listenIP)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		// Loopback and private ranges are refused anyway; what is lost is a public
		// address of this host other than the relay address.
		log.Warn("list interface addresses for the turn peer filter", "err", err)
		return own
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			own = append(own, p.Addr().Unmap())
		}
	}
	return own
}

// listen opens UDP and TCP on the same port; with port 0 it retries until the port
// the UDP socket got is also free for TCP.
func listen(ctx context.Context, host string, port int) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	tries := 1
	if port == 0 {
		tries = 20
	}
	var lastErr error
	for range tries {
		udp, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, nil, fmt.Errorf("listen turn udp: %w", err)
		}
		got := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(got)))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, nil, fmt.Errorf("listen turn tcp: %w", lastErr)
}

// authenticate is pion's AuthHandler: it accepts any unexpired username and returns
// the key for the password derived from it, which pion checks the request against.
func (s *Server) authenticate(username, realm string, src net.Addr) ([]byte, bool) {
	password, err := s.secret.check(username, time.Now())
	if err != nil {
		s.log.Debug("turn credentials refused", "client", src.String(), "err", err)
		return nil, false
	}
	return turn.GenerateAuthKey(username, realm, password), true
}

// Secret is the server's credential secret, for publishing credentials (MetadataValue).
func (s *Server) Secret() *Secret { return s.secret }

// Port is the UDP and TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// UDPAddr is the address of the UDP listener.
func (s *Server) UDPAddr() net.Addr { return s.udp.LocalAddr() }

// TCPAddr is the address of the TCP listener.
func (s *Server) TCPAddr() net.Addr { return s.tcp.Addr() }

// Allocations is the number of live allocations.
func (s *Server) Allocations() int { return s.pion.AllocationCount() }

// Close stops the listeners and drops every client connection and allocation.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		err := s.pion.Close()
		// pion stops accepting but leaves accepted TCP connections open.
		s.tcp.closeConns()
		if err != nil {
			s.closeErr = fmt.Errorf("close turn server: %w", err)
		}
		s.log.Info("turn server closed")
	})
	return s.closeErr
}

// trackingListener remembers accepted connections so that Close can end them.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackingListener) closeConns() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return err
}
