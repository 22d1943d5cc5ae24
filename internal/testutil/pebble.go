package testutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// PebbleVersion is the release of Pebble, Let's Encrypt's ACME test CA, that the ACME
// tests run; it is installed from the Go module proxy on first use.
const PebbleVersion = "v2.10.3"

var pebbleBuild struct {
	once sync.Once
	path string
	err  error
}

// pebbleBinary installs Pebble once per machine (under the user's cache directory,
// so later test runs skip the build) and returns its path.
func pebbleBinary() (string, error) {
	b := &pebbleBuild
	b.once.Do(func() {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		dir = filepath.Join(dir, "coibox-test", "pebble-"+PebbleVersion)
		b.path = filepath.Join(dir, "pebble")
		if _, err := os.Stat(b.path); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/letsencrypt/pebble/v2/cmd/pebble@"+PebbleVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("install pebble %s: %w\n%s", PebbleVersion, err, out)
		}
	})
	return b.path, b.err
}

// PebbleOptions configures StartPebble.
type PebbleOptions struct {
	// DNS is the resolver ("127.0.0.1:port", a dnstest server) Pebble looks names up
	// with when it validates challenges.
	DNS string
	// HTTPPort and TLSPort are the ports Pebble connects to for HTTP-01 and
	// TLS-ALPN-01 validation, on the address the name resolves to.
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates; zero means 90 days.
	Validity time.Duration
	// Port is the ACME port on 127.0.0.1; zero picks a free one. A restarted Pebble
	// keeps it.
	Port int
}

// Pebble is a running Pebble CA on 127.0.0.1, its ACME directory served over HTTPS
// with a certificate from a test CA.
type Pebble struct {
	// DirectoryURL is the ACME directory, for tls.acme_directory.
	DirectoryURL string
	// CA issued Pebble's own HTTPS certificate: ACME clients must trust CA.Pool (or the
	// file CAFile) to talk to Pebble at all.
	CA     *CA
	CAFile string

	bin, config, mgmt, dns string
	log                    io.Writer
	cmd                    *exec.Cmd
	done                   chan struct{}
}

// StartPebble runs Pebble for the test, stopped when the test ends. Pebble's log
// goes to the test's log on failure.
func StartPebble(t testing.TB, o PebbleOptions) *Pebble {
	t.Helper()
	bin, err := pebbleBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca, err := NewCA("coibox test CA for pebble")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	ports := FreePorts(t, 2)
	if o.Port != 0 {
		ports[0] = o.Port
	}
	validity := o.Validity
	if validity == 0 {
		validity = 90 * 24 * time.Hour
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  "127.0.0.1:" + strconv.Itoa(ports[0]),
		"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(ports[1]),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       o.HTTPPort,
		"tlsPort":                        o.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{"default": map[string]any{
			"description":    "coibox tests",
			"validityPeriod": int(validity / time.Second),
		}},
	}}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Pebble{
		DirectoryURL: fmt.Sprintf("https://localhost:%d/dir", ports[0]),
		CA:           ca, CAFile: caFile,
		bin: bin, config: config, mgmt: fmt.Sprintf("https://localhost:%d", ports[1]),
		dns: o.DNS, log: &lockedBuffer{},
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("pebble log:\n%s", Tail(p.log.(*lockedBuffer).String(), 60))
		}
	})
	return p
}

// Start starts Pebble (again, after Stop: a new root, the same ports) and waits until
// its directory answers.
func (p *Pebble) Start() error {
	cmd := exec.Command(p.bin, "-config", p.config, "-dnsserver", p.dns)
	// No sleeping before validation, no simulated bad nonces, no reused
	// authorizations: each order is validated, at once.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pebble: %w", err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(p.done)
	client := p.client()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(p.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("pebble exited at start:\n%s", p.log.(*lockedBuffer).String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("pebble not answering on %s: %v", p.DirectoryURL, err)
		}
	}
}

// Stop stops Pebble; the CA is then unreachable, its port closed.
func (p *Pebble) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// client trusts Pebble's HTTPS certificate.
func (p *Pebble) client() *http.Client {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.CA.Pool},
		DialContext:     (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// Roots returns a pool holding only the root that signs Pebble's certificates (a new
// one each start), for clients that must verify what Pebble issued.
func (p *Pebble) Roots(ctx context.Context) (*x509.CertPool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.mgmt+"/roots/0", nil)
	if err != nil {
		return nil, fmt.Errorf("get pebble root: %w", err)
	}
	resp, err := p.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("get pebble root: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get pebble root: %d %v", resp.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("get pebble root: no certificate in %q", data)
	}
	return pool, nil
}
