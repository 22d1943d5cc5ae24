package webpush

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// maxRetryAfter caps a Retry-After (§8.10).
	maxRetryAfter = 300 * time.Second
	// maxRefusals: this many 400/401/403/413/other answers in a row delete the
	// subscription (§8.10).
	maxRefusals = 3
	// removeTimeout bounds one Options.Remove or Options.Load call.
	removeTimeout = 30 * time.Second
)

// task is one request to one subscription.
type task struct {
	account int64
	payload payload
	id      string
	stored  []byte
	sub     *Subscription
	attempt int // requests already made for this notification
}

// Notify queues the notifications of one committed delivery (§8.6). Call it after the
// commit (D9) and only for final local deliveries, never APPEND/COPY/MOVE (D8). It
// does not block: it copies the few header fields and the small body the payload may
// use (one pass over the header block, no I/O), and a worker reads the account's
// subscriptions and, only if one is validated, builds the payload and makes the
// requests. A full queue drops the delivery's notifications.
func (s *Service) Notify(d Delivery) {
	if s.stopped.Load() {
		return
	}
	sc, ok := scan(d)
	if !ok {
		return
	}
	select {
	case s.deliveries <- &sc:
	default:
		s.log.Warn("webpush: queue full, delivery not notified", "account", d.Account)
	}
}

// offer queues a request; a full queue drops it.
func (s *Service) offer(t task) {
	select {
	case s.requests <- t:
	default:
		s.log.Warn("webpush: queue full, notification dropped", "account", t.account)
	}
}

// Run runs the notifier's workers and the sweep of expired pending subscriptions
// until ctx ends. Requests in flight are cancelled with it; queued notifications are
// dropped (invariant 3: a lost notification only delays a client until it polls).
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range s.o.Workers {
		wg.Go(func() { s.work(ctx) })
	}
	interval := min(max(s.o.ValidationWindow/5, time.Second), time.Minute)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.stopped.Store(true)
			wg.Wait()
			return nil
		case <-tick.C:
			s.sweep(ctx)
		}
	}
}

// work takes requests before deliveries: a request is a delivery already admitted
// (or its retry), and a burst of deliveries must not crowd it out of the queue.
func (s *Service) work(ctx context.Context) {
	for {
		select {
		case t := <-s.requests:
			s.send(ctx, t)
			continue
		default:
		}
		select {
		case <-ctx.Done():
			return
		case t := <-s.requests:
			s.send(ctx, t)
		case sc := <-s.deliveries:
			s.fanOut(ctx, sc)
		}
	}
}

// fanOut turns a delivery into one request task per validated subscription that
// wants it. Most accounts have none: then no payload is built.
func (s *Service) fanOut(ctx context.Context, sc *scanned) {
	lctx, cancel := context.WithTimeout(ctx, removeTimeout)
	subs, err := s.o.Load(lctx, sc.account)
	cancel()
	if err != nil {
		s.log.Warn("webpush: load subscriptions", "account", sc.account, "err", err)
		return
	}
	var p payload
	built := false
	for id, stored := range subs {
		sub, err := DecodeStored(stored)
		if err != nil {
			s.log.Warn("webpush: unreadable subscription skipped", "account", sc.account, "id", id, "err", err)
			continue
		}
		if !sub.Validated {
			// A pending subscription past its window is deleted on read (§8.4); this
			// also catches those the sweep lost track of in a restart.
			if s.expired(sub, s.o.Now()) {
				s.remove(ctx, subKey{sc.account, id}, stored)
			}
			continue
		}
		if !built {
			var ok bool
			if p, ok = sc.render(); !ok {
				return
			}
			built = true
		}
		if wants(sub, sc.chat, p.from) {
			s.offer(task{account: sc.account, payload: p, id: id, stored: stored, sub: sub})
		}
	}
}

// wants applies a subscription's filters (§8.6).
func wants(sub *Subscription, chat bool, from string) bool {
	switch sub.MsgType {
	case MsgTypeChat:
		if !chat {
			return false
		}
	case MsgTypeMail, MsgTypeEmail:
		if chat {
			return false
		}
	}
	if from != "" {
		for _, x := range sub.ExcludeFrom {
			if asciiEqualFold(x, from) {
				return false
			}
		}
	}
	return true
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

// send makes one request and acts on its outcome (§8.10).
func (s *Service) send(ctx context.Context, t task) {
	rctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	res := s.post(rctx, t.sub, t.payload.json, false)
	cancel()
	if ctx.Err() != nil {
		return // shutting down; the failure is ours, not the endpoint's
	}
	t.attempt++
	k := subKey{t.account, t.id}
	host := t.sub.endpoint.Host
	switch {
	case res.err == nil && res.status >= 200 && res.status <= 299: // D4: any 2xx
		s.mu.Lock()
		delete(s.refusals, k)
		s.mu.Unlock()
	case res.err == nil && (res.status == http.StatusNotFound || res.status == http.StatusGone):
		s.log.Debug("webpush: subscription gone", "account", t.account, "host", host, "status", res.status)
		s.remove(ctx, k, t.stored)
	case res.err != nil || res.status == http.StatusTooManyRequests || res.status >= 500:
		s.log.Debug("webpush: push failed", "account", t.account, "host", host, "status", res.status, "err", res.err, "attempt", t.attempt)
		if t.attempt > len(s.backoff) {
			return // given up; the subscription stays
		}
		wait := s.backoff[t.attempt-1]
		if res.retryAfter >= 0 {
			wait = res.retryAfter
		}
		s.retry(t, wait)
	default:
		s.log.Debug("webpush: push refused", "account", t.account, "host", host, "status", res.status)
		s.mu.Lock()
		s.refusals[k]++
		n := s.refusals[k]
		s.mu.Unlock()
		if n >= maxRefusals {
			s.remove(ctx, k, t.stored)
		}
	}
}

// retry offers t again after wait. The timer, not a worker, does the waiting; their
// number is bounded by the queue size so that a dead push service cannot pile them up.
func (s *Service) retry(t task, wait time.Duration) {
	if s.retries.Add(1) > int64(s.o.QueueSize) {
		s.retries.Add(-1)
		s.log.Warn("webpush: too many retries waiting, notification dropped", "account", t.account)
		return
	}
	time.AfterFunc(wait, func() {
		s.retries.Add(-1)
		if !s.stopped.Load() {
			s.offer(t)
		}
	})
}

func (s *Service) remove(ctx context.Context, k subKey, stored []byte) {
	s.mu.Lock()
	delete(s.refusals, k)
	delete(s.pending, k)
	s.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, removeTimeout)
	defer cancel()
	if err := s.o.Remove(rctx, k.account, k.id, stored); err != nil {
		s.log.Warn("webpush: remove subscription", "account", k.account, "err", err)
	}
}

// result is a request's outcome: an HTTP status, or a transport error.
type result struct {
	status int
	// retryAfter is the response's Retry-After, capped; -1 if absent or unreadable.
	retryAfter time.Duration
	err        error
}

// post encrypts plaintext for sub and POSTs it (§8.9): exactly the spec's headers
// (written with its spelling; HTTP/2 lower-cases them anyway), no User-Agent and no
// Accept-Encoding. The response body is read a little, for the connection's reuse,
// and never looked at.
func (s *Service) post(ctx context.Context, sub *Subscription, plaintext []byte, validation bool) result {
	body, auth, err := s.seal(sub, plaintext)
	if err != nil {
		return result{err: err, retryAfter: -1}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return result{err: fmt.Errorf("make push request: %w", err), retryAfter: -1}
	}
	req.Header = http.Header{
		"TTL":              {strconv.FormatInt(int64(s.o.TTL/time.Second), 10)},
		"Content-Encoding": {"aes128gcm"},
		"Content-Type":     {"application/octet-stream"},
		"Authorization":    {auth},
		"User-Agent":       {""}, // an empty User-Agent is not sent
	}
	if validation {
		req.Header["WebPush-Validation"] = []string{""} // D2: present, empty
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// The client's error quotes the whole URL, whose path is the device's
		// secret; what is left names the host at most (§8.10: log the host only).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return result{err: fmt.Errorf("post to %s: %w", sub.endpoint.Host, err), retryAfter: -1}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return result{status: resp.StatusCode, retryAfter: retryAfter(resp.Header.Get("Retry-After"), s.o.Now())}
}

// seal makes one request's body and Authorization value: a fresh key pair and salt
// (§8.8) and a token for the endpoint's origin (§8.9).
func (s *Service) seal(sub *Subscription, plaintext []byte) (body []byte, auth string, err error) {
	as, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate message key: %w", err)
	}
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(s.o.Rand, salt); err != nil {
		return nil, "", fmt.Errorf("make salt: %w", err)
	}
	body, err = encrypt(plaintext, sub.uaPublic, sub.authSecret, salt, as, s.o.Padding)
	if err != nil {
		return nil, "", fmt.Errorf("encrypt push message: %w", err)
	}
	auth, err = s.key.authorization(origin(sub), s.sub, s.o.Now().Add(jwtLifetime))
	if err != nil {
		return nil, "", err
	}
	return body, auth, nil
}

// origin is the endpoint's origin (RFC 6454), the JWT's aud (D3): scheme and host,
// and the port only if it is not 443.
func origin(sub *Subscription) string {
	host := strings.ToLower(sub.endpoint.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if n, err := strconv.Atoi(sub.endpoint.Port()); err == nil && n != 443 {
		host += ":" + strconv.Itoa(n) // "0443" is 443 too
	}
	return "https://" + host
}

// retryAfter reads a Retry-After of delay-seconds or an HTTP date, capped at
// maxRetryAfter; -1 if absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return -1
		}
		d = time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return -1
	}
	return min(d, maxRetryAfter)
}
