package webpush

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coibox/coibox/internal/netblock"
)

// errNotPublic: the endpoint's address is one a client must not make the server reach
// (D10). Refusing at connect time, not only at subscribe time, is what defeats DNS
// rebinding.
var errNotPublic = errors.New("endpoint address is not public")

// publicAddr reports whether a is an address a push service may have (§8.3).
func publicAddr(a netip.Addr) bool { return netblock.Public(a) }

// allowList holds webpush.allow_endpoints: host or host:port entries exempt from the
// public-address rule (tests use loopback).
type allowList map[string]bool

// newAllowList checks and normalises the entries: "host" allows every port of host,
// "host:port" (or "[v6]:port") that port only.
func newAllowList(entries []string) (allowList, error) {
	l := allowList{}
	for _, e := range entries {
		host, port, err := net.SplitHostPort(e)
		if err != nil {
			host, port = e, ""
		}
		host = normHost(host)
		if host == "" || strings.ContainsAny(host, " /@") {
			return nil, fmt.Errorf("parse allowed endpoint %q: not host or host:port", e)
		}
		if port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("parse allowed endpoint %q: bad port", e)
			}
			l[net.JoinHostPort(host, port)] = true
			continue
		}
		l[host] = true
	}
	return l, nil
}

// allows reports whether host (as in a URL, brackets optional) and port are exempt.
func (l allowList) allows(host, port string) bool {
	if len(l) == 0 {
		return false
	}
	host = normHost(host)
	return l[host] || l[net.JoinHostPort(host, port)]
}

func normHost(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// dialer makes the notifier's connections: to an allow-listed host:port or to the
// configured proxy as asked, to anything else only if the address it is about to
// connect to is public.
type dialer struct {
	allow    allowList
	proxy    string // normalised host:port of webpush.https_proxy, trusted as the admin's choice
	resolver *net.Resolver
	timeout  time.Duration
}

// isProxy reports whether host:port is the configured proxy.
func (d *dialer) isProxy(host, port string) bool {
	return d.proxy != "" && net.JoinHostPort(normHost(host), port) == d.proxy
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout, KeepAlive: 30 * time.Second, Resolver: d.resolver}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial endpoint: %w", err)
	}
	if !d.isProxy(host, port) && !d.allow.allows(host, port) {
		// Control sees each resolved address right before connect(2); refusing one
		// makes the dialer try the next, so a name with public and private addresses
		// only ever reaches the public ones.
		nd.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !publicAddr(ap.Addr()) {
				return errNotPublic
			}
			return nil
		}
	}
	return nd.DialContext(ctx, network, addr)
}
