package e2e

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/coi/webpush/webpushtest"
	"github.com/coibox/coibox/internal/testutil"
)

// TestCOIWebPush: a COI client's WebPush subscription over METADATA (coi spec §8,
// the transcript of §9): the VAPID key, a subscription whose validation push a local
// endpoint decrypts, validation, the public form, then a delivery that the endpoint
// receives encrypted, with VAPID authorisation, and decrypts to the notification
// JSON; unsubscribing stops it.
func TestCOIWebPush(t *testing.T) {
	ua, err := webpushtest.NewUserAgent()
	if err != nil {
		t.Fatal(err)
	}
	pushes := make(chan *http.Request, 10)
	bodies := make(chan []byte, 10)
	// forgotten turns the endpoint, in the last phase, into a push service that has
	// forgotten the subscriptions whose path holds "gone": 410 for those, 201 else.
	var forgotten atomic.Bool
	ep := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		pushes <- r
		bodies <- b
		if forgotten.Load() && strings.Contains(r.URL.Path, "gone") {
			w.WriteHeader(http.StatusGone)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer ep.Close()
	// The server trusts the endpoint's certificate as it would a push service's.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ep.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", caFile)
	host := strings.TrimPrefix(ep.URL, "https://")
	s := startServer(t, options{users: []string{"olga"}, config: fmt.Sprintf("\n[webpush]\nallow_endpoints = [%q]\n", host)})
	user := "olga@" + domain

	c, err := imapclient.DialTLS(s.addr.IMAPS, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, s.passwords[user]).Wait(); err != nil {
		t.Fatal(err)
	}
	if !c.Caps().Has("COI") || !c.Caps().Has("WEBPUSH") {
		t.Fatalf("capabilities after login: %v", c.Caps())
	}
	const prefix = "/private/vendor/vendor.dovecot/webpush"
	md, err := c.GetMetadata("", []string{prefix + "/vapid"}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if v := md.Entries[prefix+"/vapid"]; v == nil || !strings.HasPrefix(string(*v), "-----BEGIN PUBLIC KEY-----") || len(*v) != 177 {
		t.Fatalf("vapid entry: %v", v)
	}

	const id = "31754ee7-d3ee-4226-b112-6895ed26fcf8"
	subscribe := func(id string, wrongFirst bool) {
		t.Helper()
		sub := ua.SubscriptionJSON(ep.URL+"/p/"+id, "any", "")
		if err := c.SetMetadata("", map[string]*[]byte{prefix + "/subscriptions/" + id: &sub}).Wait(); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		validation := decryptNext(t, ua, pushes, bodies)
		var v struct{ Validation string }
		if err := json.Unmarshal(validation, &v); err != nil || v.Validation == "" {
			t.Fatalf("validation push %q: %v", validation, err)
		}
		if wrongFirst {
			wrong := []byte("ZZZ000")
			if err := c.SetMetadata("", map[string]*[]byte{prefix + "/subscriptions/" + id + "/validate": &wrong}).Wait(); err == nil || !strings.Contains(err.Error(), "invalid validation") {
				t.Errorf("wrong validation: %v", err)
			}
		}
		right := []byte(v.Validation)
		if err := c.SetMetadata("", map[string]*[]byte{prefix + "/subscriptions/" + id + "/validate": &right}).Wait(); err != nil {
			t.Fatalf("validate: %v", err)
		}
		pub := subscriptions(t, c)[id]
		if pub == "" || !strings.Contains(pub, `"validated":true`) || strings.Contains(pub, v.Validation) {
			t.Fatalf("public form of the subscription: %q", pub)
		}
	}
	subscribe(id, true)

	// A delivery notifies, encrypted and signed.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl, _, err := testutil.DialSMTP(ctx, s.addr.SMTP, testutil.SMTPDialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := cl.Hello("peer.e2e.test"); err != nil || r.Code != 250 {
		t.Fatal(r, err)
	}
	if r, err := cl.Send("x@example.org", []string{user}, newMessage("x@example.org", user, "push-1@example.org", 300)); err != nil || r.Code != 250 {
		t.Fatalf("send: %v %v", r, err)
	}
	start := time.Now()
	r := <-pushes
	notification, err := ua.Decrypt(<-bodies)
	if err != nil {
		t.Fatalf("decrypt notification: %v", err)
	}
	t.Logf("notification %v after the 250: %s", time.Since(start), notification)
	if got := r.Header.Get("Content-Encoding"); got != "aes128gcm" {
		t.Errorf("Content-Encoding %q", got)
	}
	if a := r.Header.Get("Authorization"); !strings.HasPrefix(a, "vapid t=") || !strings.Contains(a, ", k=") {
		t.Errorf("Authorization %q", a)
	}
	var n map[string]any
	if err := json.Unmarshal(notification, &n); err != nil {
		t.Fatal(err)
	}
	if n["folder"] != "INBOX" || n["from-email"] != "x@example.org" || n["uid"] != float64(1) {
		t.Errorf("notification fields: %v", n)
	}

	// Unsubscribed: no more pushes.
	if err := c.SetMetadata("", map[string]*[]byte{prefix + "/subscriptions/" + id: nil}).Wait(); err != nil {
		t.Fatal(err)
	}
	if r, err := cl.Send("x@example.org", []string{user}, newMessage("x@example.org", user, "push-2@example.org", 300)); err != nil || r.Code != 250 {
		t.Fatalf("send: %v %v", r, err)
	}
	select {
	case r := <-pushes:
		t.Errorf("a push after unsubscribing: %s", r.URL)
	case <-time.After(time.Second):
	}

	// The push service forgets one subscription: its 410 removes that one from the
	// account (through the store's compare-and-delete), and the other one stays.
	const gone, kept = "0d6a1f0e-gone", "7c1e9b2a-kept"
	subscribe(gone, false)
	subscribe(kept, false)
	forgotten.Store(true)
	if r, err := cl.Send("x@example.org", []string{user}, newMessage("x@example.org", user, "push-3@example.org", 300)); err != nil || r.Code != 250 {
		t.Fatalf("send: %v %v", r, err)
	}
	for range 2 {
		decryptNext(t, ua, pushes, bodies)
	}
	var left map[string]string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left = subscriptions(t, c); len(left) < 2 {
			break
		}
	}
	if _, ok := left[gone]; ok || len(left) != 1 || left[kept] == "" {
		t.Errorf("subscriptions after %s's endpoint answered 410: %v", gone, left)
	}
}

// subscriptions returns the public form of the account's WebPush subscriptions by id.
func subscriptions(t *testing.T, c *imapclient.Client) map[string]string {
	t.Helper()
	const prefix = "/private/vendor/vendor.dovecot/webpush/subscriptions/"
	md, err := c.GetMetadata("", []string{strings.TrimSuffix(prefix, "/")}, &imapclient.GetMetadataOptions{Depth: imapclient.GetMetadataDepthOne}).Wait()
	if err != nil {
		t.Fatalf("GETMETADATA subscriptions: %v", err)
	}
	out := map[string]string{}
	for name, v := range md.Entries {
		if id, ok := strings.CutPrefix(name, prefix); ok && v != nil && !strings.Contains(id, "/") {
			out[id] = string(*v)
		}
	}
	return out
}

// decryptNext waits for the endpoint's next request and decrypts it.
func decryptNext(t *testing.T, ua webpushtest.UserAgent, pushes chan *http.Request, bodies chan []byte) []byte {
	t.Helper()
	select {
	case <-pushes:
	case <-time.After(15 * time.Second):
		t.Fatal("no push within 15 s")
	}
	plain, err := ua.Decrypt(<-bodies)
	if err != nil {
		t.Fatalf("decrypt push: %v", err)
	}
	return plain
}
