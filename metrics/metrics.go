// Package metrics holds the Prometheus collectors every coibox listener reports to.
// cmd creates one *Metrics and passes it in; a nil *Metrics is valid and records nothing.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Rejection reasons, the values of the "reason" label of coibox_messages_rejected_total.
// They are a closed set so that the label's cardinality stays bounded.
const (
	ReasonUnknownUser    = "unknown_user"
	ReasonRelayDenied    = "relay_denied"
	ReasonTooBig         = "too_big"
	ReasonAuthRequired   = "auth_required"
	ReasonSenderMismatch = "sender_mismatch"
	ReasonQuota          = "quota"
	ReasonPolicy         = "policy"
	ReasonTooManyRcpts   = "too_many_rcpts"
	ReasonTLSRequired    = "tls_required"
	ReasonSyntax         = "syntax"
	ReasonStorageFull    = "storage_full"
)

// Delivery destinations, the values of the "destination" label of coibox_deliveries_total.
const (
	DestLocal  = "local"
	DestQueued = "queued"
)

// Metrics is the set of coibox's collectors, registered in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	received      *prometheus.CounterVec
	delivered     *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	sessions      *prometheus.GaugeVec
	sessionsTotal *prometheus.CounterVec
	refused       *prometheus.CounterVec
	authFailures  *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	commitBatch   prometheus.Histogram
	imapSessions  prometheus.Gauge

	outRecipients  *prometheus.CounterVec
	outConnections *prometheus.CounterVec
	outSeconds     prometheus.Histogram
	dsns           *prometheus.CounterVec
}

// New creates the collectors and a registry holding them and the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coibox_messages_received_total",
			Help: "Messages whose content was received completely, by listener.",
		}, []string{"listener"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coibox_deliveries_total",
			Help: "Message copies committed: to a local mailbox, or queued for a remote recipient.",
		}, []string{"destination"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coibox_messages_rejected_total",
			Help: "Recipients or messages refused, by listener and reason.",
		}, []string{"listener", "reason"}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coibox_smtp_sessions",
			Help: "Open SMTP connections, by listener.",
		}, []string{"listener"}),
		sessionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coibox_smtp_sessions_total",
			Help: "SMTP connections accepted, by listener.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coibox_connections_refused_total",
			Help: "Connections refused at the greeting, by listener and reason (limit, per_ip, auth_lockout).",
		}, []string{"listener", "reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coibox_auth_failures_total",
			Help: "Failed logins, by listener.",
		}, []string{"listener"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "coibox_store_commit_seconds",
			Help: "Duration of one group-committed store transaction, fsync included.",
			// 0.5 ms to 4 s: an fsync on an SSD is about a millisecond, on an SD card tens.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "coibox_store_commit_batch_size",
			Help:    "Writes sharing one store transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		imapSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "coibox_imap_sessions",
			Help: "Open IMAP connections.",
		}),
		outRecipients: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coibox_outbound_recipients_total",
			Help: "Outbound delivery attempts per recipient, by result (delivered, deferred, bounced, expired).",
		}, []string{"result"}),
		outConnections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coibox_outbound_connections_total",
			Help: "Outbound SMTP connections, by TLS (verified, unverified, plain).",
		}, []string{"tls"}),
		outSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "coibox_outbound_transaction_seconds",
			Help:    "Duration of one outbound SMTP transaction.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		dsns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coibox_dsns_total",
			Help: "Delivery status notifications generated, by action (failed, delayed).",
		}, []string{"action"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.received, m.delivered, m.rejected, m.sessions, m.sessionsTotal, m.refused,
		m.authFailures, m.commitSeconds, m.commitBatch, m.imapSessions,
		m.outRecipients, m.outConnections, m.outSeconds, m.dsns,
	)
	return m
}

// Registry is the registry the collectors live in, for packages that add their own.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition format (for /metrics).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// MessageReceived counts a message whose content arrived completely on a listener.
func (m *Metrics) MessageReceived(listener string) {
	if m == nil {
		return
	}
	m.received.WithLabelValues(listener).Inc()
}

// Delivered counts n message copies committed to destination (DestLocal or DestQueued).
func (m *Metrics) Delivered(destination string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.delivered.WithLabelValues(destination).Add(float64(n))
}

// Rejected counts one refusal on a listener for a reason (one of the Reason constants).
func (m *Metrics) Rejected(listener, reason string) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(listener, reason).Inc()
}

// SessionStarted counts an accepted SMTP connection; call SessionEnded when it closes.
func (m *Metrics) SessionStarted(listener string) {
	if m == nil {
		return
	}
	m.sessions.WithLabelValues(listener).Inc()
	m.sessionsTotal.WithLabelValues(listener).Inc()
}

// SessionEnded is SessionStarted's counterpart.
func (m *Metrics) SessionEnded(listener string) {
	if m == nil {
		return
	}
	m.sessions.WithLabelValues(listener).Dec()
}

// ConnectionRefused counts a connection turned away at the greeting.
func (m *Metrics) ConnectionRefused(listener, reason string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(listener, reason).Inc()
}

// AuthFailed counts a failed login on a listener.
func (m *Metrics) AuthFailed(listener string) {
	if m == nil {
		return
	}
	m.authFailures.WithLabelValues(listener).Inc()
}

// ObserveCommit records one store commit; its signature fits store.Options.Observe.
func (m *Metrics) ObserveCommit(batch int, d time.Duration) {
	if m == nil {
		return
	}
	m.commitSeconds.Observe(d.Seconds())
	m.commitBatch.Observe(float64(batch))
}

// IMAPSessionStarted counts an open IMAP connection; IMAPSessionEnded undoes it.
func (m *Metrics) IMAPSessionStarted() {
	if m == nil {
		return
	}
	m.imapSessions.Inc()
}

// IMAPSessionEnded is IMAPSessionStarted's counterpart.
func (m *Metrics) IMAPSessionEnded() {
	if m == nil {
		return
	}
	m.imapSessions.Dec()
}

// OutboundRecipient counts one outbound attempt for a recipient by its result.
func (m *Metrics) OutboundRecipient(result string) {
	if m == nil {
		return
	}
	m.outRecipients.WithLabelValues(result).Inc()
}

// OutboundConnection counts one outbound SMTP connection by how its TLS went.
func (m *Metrics) OutboundConnection(tls string) {
	if m == nil {
		return
	}
	m.outConnections.WithLabelValues(tls).Inc()
}

// OutboundTransaction records the duration of one outbound SMTP transaction.
func (m *Metrics) OutboundTransaction(d time.Duration) {
	if m == nil {
		return
	}
	m.outSeconds.Observe(d.Seconds())
}

// DSN counts one generated delivery status notification by its action.
func (m *Metrics) DSN(action string) {
	if m == nil {
		return
	}
	m.dsns.WithLabelValues(action).Inc()
}
