package netblock

import (
	"net/netip"
	"testing"
)

func TestClient(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		v4, v6 int
		want   string
	}{
		{"192.0.2.7", 32, 64, "192.0.2.7"},
		{"192.0.2.7", 24, 64, "192.0.2.0"},
		{"::ffff:192.0.2.7", 24, 64, "192.0.2.0"},
		{"2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::"},
		{"2001:db8:1:2:3:4:5:6", 32, 128, "2001:db8:1:2:3:4:5:6"},
	} {
		if got := Client(netip.MustParseAddr(tc.ip), tc.v4, tc.v6); got.String() != tc.want {
			t.Errorf("Client(%s, %d, %d) = %s, want %s", tc.ip, tc.v4, tc.v6, got, tc.want)
		}
	}
}

func TestPublic(t *testing.T) {
	for ip, want := range map[string]bool{
		"93.184.216.34": true, "2606:2800:220:1::1": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "192.168.1.1": false, "172.16.0.1": false,
		"169.254.169.254": false, "fe80::1": false, "fc00::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "224.0.0.1": false, "255.255.255.255": false, "64:ff9b::7f00:1": false,
		"2002:7f00:1::": false, "::ffff:127.0.0.1": false,
	} {
		if got := Public(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Public(%s) = %v, want %v", ip, got, want)
		}
	}
}
