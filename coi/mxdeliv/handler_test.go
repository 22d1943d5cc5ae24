package mxdeliv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/store"
)

// fakePipeline accepts every recipient unless told otherwise and records deliveries.
type fakePipeline struct {
	refuse     map[string]error // AddRecipient's answer per recipient
	deliverErr error            // Deliver's answer

	mu    sync.Mutex
	added []string
	msgs  []deliver.Message
}

func (f *fakePipeline) AddRecipient(_ context.Context, env *deliver.Envelope, rcpt string) error {
	f.mu.Lock()
	f.added = append(f.added, rcpt)
	f.mu.Unlock()
	if err := f.refuse[rcpt]; err != nil {
		return err
	}
	env.Recipients = append(env.Recipients, deliver.Recipient{Address: rcpt})
	return nil
}

func (f *fakePipeline) Deliver(_ context.Context, m *deliver.Message) (*deliver.Result, error) {
	if f.deliverErr != nil {
		return nil, f.deliverErr
	}
	f.mu.Lock()
	f.msgs = append(f.msgs, *m)
	f.mu.Unlock()
	return &deliver.Result{ID: m.ID, Local: len(m.Recipients)}, nil
}

var (
	errUnknown   = &deliver.Reply{Code: 550, Enhanced: [3]int{5, 1, 1}, Message: "<nobody@example.org>: Recipient address rejected: User unknown"}
	errCleartext = &deliver.Reply{Code: 523, Enhanced: deliver.NoEnhanced, Message: "Encryption Needed: Invalid Unencrypted Mail"}
)

const testBody = "From: <alice@remote.example>\r\nTo: <bob@example.org>\r\nSubject: hi\r\n\r\nHello.\r\n"

func manyRcpts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "user" + strconv.Itoa(i) + "@example.org"
	}
	return out
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		from       []string // X-MAIL-FROM values; nil: none
		to         []string // X-MAIL-TO values
		body       string
		chunked    bool // no Content-Length
		maxBytes   int64
		refuse     map[string]error
		deliverErr error

		wantStatus int
		wantBody   string // exact, or a prefix when it ends in "..."
		wantSender string
		wantRcpts  []string // of the delivered message; nil: nothing delivered
	}{
		{name: "delivered", from: []string{"alice@remote.example"}, to: []string{"bob@example.org"},
			wantStatus: 200, wantBody: "250 OK", wantSender: "alice@remote.example", wantRcpts: []string{"bob@example.org"}},
		{name: "null sender: no header", to: []string{"bob@example.org"},
			wantStatus: 200, wantBody: "250 OK", wantSender: "", wantRcpts: []string{"bob@example.org"}},
		{name: "null sender: <>", from: []string{"<>"}, to: []string{"bob@example.org"},
			wantStatus: 200, wantBody: "250 OK", wantSender: "", wantRcpts: []string{"bob@example.org"}},
		{name: "angle brackets and spaces", from: []string{" <alice@remote.example> "}, to: []string{" <bob@example.org>"},
			wantStatus: 200, wantBody: "250 OK", wantSender: "alice@remote.example", wantRcpts: []string{"bob@example.org"}},
		{name: "repeated and comma-split", from: []string{"alice@remote.example"}, to: []string{"<bob@example.org>, carol@example.org", "dave@example.org,"},
			wantStatus: 200, wantBody: "250 OK", wantSender: "alice@remote.example", wantRcpts: []string{"bob@example.org", "carol@example.org", "dave@example.org"}},
		{name: "not POST", method: http.MethodGet, to: []string{"bob@example.org"},
			wantStatus: 405, wantBody: "Method Not Allowed"},
		{name: "PUT is not POST either", method: http.MethodPut, to: []string{"bob@example.org"},
			wantStatus: 405, wantBody: "Method Not Allowed"},
		{name: "recipient refused: all or nothing", from: []string{"alice@remote.example"}, to: []string{"bob@example.org", "nobody@example.org"},
			refuse:     map[string]error{"nobody@example.org": errUnknown},
			wantStatus: 400, wantBody: "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"},
		{name: "message refused: 523", from: []string{"alice@remote.example"}, to: []string{"bob@example.org"}, deliverErr: errCleartext,
			wantStatus: 400, wantBody: "523 Encryption Needed: Invalid Unencrypted Mail"},
		{name: "internal error at the recipient", to: []string{"bob@example.org"},
			refuse:     map[string]error{"bob@example.org": errors.New("database is locked")},
			wantStatus: 500, wantBody: "451 4.3.0 ..."},
		{name: "internal error at delivery", to: []string{"bob@example.org"}, deliverErr: fmt.Errorf("store message: %w", errors.New("disk full")),
			wantStatus: 500, wantBody: "451 4.3.0 ..."},
		{name: "body at the limit", to: []string{"bob@example.org"}, body: strings.Repeat("x", 100), maxBytes: 100,
			wantStatus: 200, wantBody: "250 OK", wantRcpts: []string{"bob@example.org"}},
		{name: "body over the limit", to: []string{"bob@example.org"}, body: strings.Repeat("x", 101), maxBytes: 100,
			wantStatus: 413, wantBody: "552 Message exceeds maximum size"},
		{name: "chunked body over the limit", to: []string{"bob@example.org"}, body: strings.Repeat("x", 101), maxBytes: 100, chunked: true,
			wantStatus: 413, wantBody: "552 Message exceeds maximum size"},
		{name: "chunked body at the limit", to: []string{"bob@example.org"}, body: strings.Repeat("x", 100), maxBytes: 100, chunked: true,
			wantStatus: 200, wantBody: "250 OK", wantRcpts: []string{"bob@example.org"}},
		{name: "pipeline's size limit", to: []string{"bob@example.org"}, deliverErr: deliver.ErrTooBig,
			wantStatus: 413, wantBody: "552 Message exceeds maximum size"},
		{name: "1000 recipients", to: manyRcpts(MaxRecipients),
			wantStatus: 200, wantBody: "250 OK", wantRcpts: manyRcpts(MaxRecipients)},
		{name: "1001 recipients", to: manyRcpts(MaxRecipients + 1),
			wantStatus: 400, wantBody: "452 4.5.3 Too many recipients"},
		{name: "1001 recipients in one header", to: []string{strings.Join(manyRcpts(MaxRecipients+1), ",")},
			wantStatus: 400, wantBody: "452 4.5.3 Too many recipients"},
		{name: "no recipients", from: []string{"alice@remote.example"},
			wantStatus: 400, wantBody: "554 5.5.1 No valid recipients"},
		{name: "only commas", to: []string{",, ,"},
			wantStatus: 400, wantBody: "554 5.5.1 No valid recipients"},
		{name: "bad recipient", to: []string{"bob@example.org", "bob"},
			wantStatus: 400, wantBody: "501 5.1.3 Bad recipient address syntax"},
		{name: "recipient with a space", to: []string{"bob smith@example.org"},
			wantStatus: 400, wantBody: "501 5.1.3 Bad recipient address syntax"},
		{name: "bad sender", from: []string{"alice"}, to: []string{"bob@example.org"},
			wantStatus: 400, wantBody: "501 5.1.7 Bad sender address syntax"},
		{name: "two senders", from: []string{"alice@remote.example", "eve@remote.example"}, to: []string{"bob@example.org"},
			wantStatus: 400, wantBody: "501 5.5.4 More than one X-MAIL-FROM header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePipeline{refuse: tc.refuse, deliverErr: tc.deliverErr}
			h := NewHandler(Options{Pipeline: p, MaxBytes: tc.maxBytes})
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			body := tc.body
			if body == "" {
				body = testBody
			}
			var rd io.Reader = strings.NewReader(body)
			if tc.chunked {
				rd = io.MultiReader(rd) // hides the length from NewRequest
			}
			r := httptest.NewRequest(method, "https://mx.example.org/mxdeliv", rd)
			if tc.chunked {
				r.ContentLength = -1
			}
			for _, v := range tc.from {
				r.Header.Add(HeaderFrom, v)
			}
			for _, v := range tc.to {
				r.Header.Add(HeaderTo, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			got := w.Body.String()
			if w.Code != tc.wantStatus {
				t.Errorf("status %d %q, want %d", w.Code, got, tc.wantStatus)
			}
			if want, ok := strings.CutSuffix(tc.wantBody, "..."); ok {
				if !strings.HasPrefix(got, want) {
					t.Errorf("body %q, want %q…", got, want)
				}
			} else if got != tc.wantBody {
				t.Errorf("body %q, want %q", got, tc.wantBody)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.wantStatus == 405 && w.Header().Get("Allow") != http.MethodPost {
				t.Errorf("405 without Allow: POST")
			}
			if tc.wantRcpts == nil {
				if len(p.msgs) != 0 {
					t.Errorf("delivered %d messages, want none", len(p.msgs))
				}
				return
			}
			if len(p.msgs) != 1 {
				t.Fatalf("delivered %d messages, want 1", len(p.msgs))
			}
			m := p.msgs[0]
			var rcpts []string
			for _, r := range m.Recipients {
				rcpts = append(rcpts, r.Address)
			}
			if !slices.Equal(rcpts, tc.wantRcpts) {
				t.Errorf("recipients %q, want %q", rcpts, tc.wantRcpts)
			}
			if m.Sender != tc.wantSender {
				t.Errorf("sender %q, want %q", m.Sender, tc.wantSender)
			}
			if m.Kind != deliver.MX || m.Listener != Listener || m.ID == "" {
				t.Errorf("envelope kind %v, listener %q, id %q", m.Kind, m.Listener, m.ID)
			}
			if want := netip.MustParseAddr("192.0.2.1"); m.RemoteIP != want { // httptest.NewRequest's
				t.Errorf("remote IP %v, want %v", m.RemoteIP, want)
			}
			if string(m.Body) != body {
				t.Errorf("body %q, want %q", m.Body, body)
			}
		})
	}
}

// An oversized recipient list is refused before the pipeline is asked about any of
// it, and a declared oversized body before anything.
func TestHandlerNoLookupsWhenRefusedEarly(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func() *http.Request
	}{
		{"10000 X-MAIL-TO headers", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/mxdeliv", strings.NewReader(testBody))
			r.Header[HeaderTo] = manyRcpts(10000)
			return r
		}},
		{"Content-Length over the limit", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/mxdeliv", strings.NewReader(strings.Repeat("x", 2000)))
			r.Header.Add(HeaderTo, "bob@example.org")
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePipeline{}
			w := httptest.NewRecorder()
			NewHandler(Options{Pipeline: p, MaxBytes: 1000}).ServeHTTP(w, tc.req())
			if w.Code/100 != 4 {
				t.Errorf("status %d %q", w.Code, w.Body)
			}
			if len(p.added) != 0 {
				t.Errorf("pipeline asked about %d recipients", len(p.added))
			}
		})
	}
}

// TestHandlerOverHTTP sends through a real net/http server: the answers survive the
// wire, 10,000 X-MAIL-TO headers are refused with the spec's reply, and an oversized
// streamed body gets 413.
func TestHandlerOverHTTP(t *testing.T) {
	p := &fakePipeline{}
	srv := httptest.NewTLSServer(NewHandler(Options{Pipeline: p, MaxBytes: 1 << 20}))
	t.Cleanup(srv.Close)
	post := func(to []string, body io.Reader) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/mxdeliv", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header[HeaderTo] = to
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(manyRcpts(10000), strings.NewReader(testBody)); code != 400 || body != "452 4.5.3 Too many recipients" {
		t.Errorf("10000 recipients: %d %q", code, body)
	}
	if code, body := post([]string{"bob@example.org"}, io.MultiReader(strings.NewReader(strings.Repeat("x", 2<<20)))); code != 413 || body != "552 Message exceeds maximum size" {
		t.Errorf("2 MiB streamed: %d %q", code, body)
	}
	if code, body := post([]string{"bob@example.org"}, strings.NewReader(testBody)); code != 200 || body != "250 OK" {
		t.Errorf("ordinary message: %d %q", code, body)
	}
	if len(p.msgs) != 1 || p.msgs[0].TLS == nil {
		t.Errorf("delivered %d messages (want 1, with the TLS state)", len(p.msgs))
	}
}

// TestHandlerRealPipeline delivers through a real pipeline into a real store: the
// message lands once in the recipient's INBOX, and a request with one unknown
// recipient stores nothing for the known one.
func TestHandlerRealPipeline(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.AddDomain(ctx, "example.org", false); err != nil {
		t.Fatal(err)
	}
	bob, err := st.AddAccount(ctx, "bob@example.org", "password-bob")
	if err != nil {
		t.Fatal(err)
	}
	pl := deliver.New(st, deliver.Options{Hostname: "mx.example.org"})
	srv := httptest.NewTLSServer(NewHandler(Options{Pipeline: pl, MaxBytes: pl.MaxMessageBytes()}))
	t.Cleanup(srv.Close)

	post := func(to ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mxdeliv", strings.NewReader(testBody))
		req.Header[HeaderFrom] = []string{"alice@remote.example"}
		req.Header[HeaderTo] = to
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("nobody@example.org, bob@example.org"); code != 400 || body != "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown" {
		t.Errorf("unknown recipient: %d %q", code, body)
	}
	if got := inbox(t, st, bob.ID); len(got) != 0 {
		t.Fatalf("refused request stored %d messages", len(got))
	}
	// bob twice: one copy.
	if code, body := post("<bob@example.org>", "Bob@example.org"); code != 200 || body != "250 OK" {
		t.Fatalf("delivery: %d %q", code, body)
	}
	got := inbox(t, st, bob.ID)
	if len(got) != 1 {
		t.Fatalf("INBOX holds %d messages, want exactly 1", len(got))
	}
	if !strings.HasSuffix(got[0], testBody) || !strings.HasPrefix(got[0], "Received: from unknown ([127.0.0.1])\r\n\tby mx.example.org with ESMTPS") {
		t.Errorf("stored message:\n%s", got[0])
	}
}

// inbox returns the bodies in an account's INBOX.
func inbox(t *testing.T, st *store.Store, accountID int64) []string {
	t.Helper()
	ctx := context.Background()
	mb, err := st.Mailbox(ctx, accountID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	_, metas, err := st.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range metas {
		uids = append(uids, m.UID)
	}
	if len(uids) == 0 {
		return nil
	}
	msgs, err := st.Messages(ctx, mb.ID, uids)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		b, err := st.Body(ctx, m.BodyID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}
