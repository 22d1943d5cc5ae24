package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// record calls every recording method once, so both tests cover the same surface.
func record(m *Metrics) {
	m.MessageReceived("mx")
	m.Delivered(DestLocal, 2)
	m.Delivered(DestQueued, 1)
	m.Rejected("mx", ReasonUnknownUser)
	m.SessionStarted("submission")
	m.SessionStarted("submission")
	m.SessionEnded("submission")
	m.ConnectionRefused("mx", "limit")
	m.AuthFailed("submission")
	m.ObserveCommit(16, 3*time.Millisecond)
	m.IMAPSessionStarted()
	m.IMAPSessionEnded()
	m.OutboundRecipient("delivered")
	m.OutboundRecipient("deferred")
	m.OutboundConnection("verified")
	m.OutboundTransaction(20 * time.Millisecond)
	m.DSN("failed")
}

func TestNilIsSafe(t *testing.T) {
	var m *Metrics
	record(m)
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 404 {
		t.Errorf("nil handler answered %d, want 404", rec.Code)
	}
}

func TestExposition(t *testing.T) {
	m := New()
	record(m)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	for _, want := range []string{
		`coibox_messages_received_total{listener="mx"} 1`,
		`coibox_deliveries_total{destination="local"} 2`,
		`coibox_deliveries_total{destination="queued"} 1`,
		`coibox_messages_rejected_total{listener="mx",reason="unknown_user"} 1`,
		`coibox_smtp_sessions{listener="submission"} 1`,
		`coibox_smtp_sessions_total{listener="submission"} 2`,
		`coibox_connections_refused_total{listener="mx",reason="limit"} 1`,
		`coibox_auth_failures_total{listener="submission"} 1`,
		`coibox_store_commit_seconds_count 1`,
		`coibox_store_commit_batch_size_sum 16`,
		`coibox_imap_sessions 0`,
		`coibox_outbound_recipients_total{result="delivered"} 1`,
		`coibox_outbound_recipients_total{result="deferred"} 1`,
		`coibox_outbound_connections_total{tls="verified"} 1`,
		`coibox_outbound_transaction_seconds_count 1`,
		`coibox_dsns_total{action="failed"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}
