package queue

import (
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"time"

	"github.com/coibox/coibox/store"
)

// Entry is a queued message as the admin commands show it.
type Entry struct {
	store.QueueEntry
	// Size is the message's size in bytes.
	Size int
	// From, Subject and MessageID are the message's header fields, as written.
	From, Subject, MessageID string
}

// List returns every queued message with all its recipients (pending, and those
// already delivered or failed while others are still pending), oldest first.
func (q *Queue) List(ctx context.Context) ([]store.QueueEntry, error) {
	es, err := q.st.QueueEntries(ctx, time.Time{}, 0)
	if err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	return es, nil
}

// Show returns one queued message with its recipients, their attempts and last
// errors, and a few header fields. An unknown id yields store.ErrNotFound.
func (q *Queue) Show(ctx context.Context, id int64) (*Entry, error) {
	es, err := q.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.ID != id {
			continue
		}
		out := &Entry{QueueEntry: e}
		body, err := q.st.Body(ctx, e.BodyID)
		if err != nil {
			return nil, fmt.Errorf("show queue entry %d: %w", id, err)
		}
		out.Size = len(body)
		if m, err := mail.ReadMessage(bytes.NewReader(dsnHeader(body))); err == nil {
			out.From = m.Header.Get("From")
			out.Subject = m.Header.Get("Subject")
			out.MessageID = m.Header.Get("Message-Id")
		}
		return out, nil
	}
	return nil, fmt.Errorf("show queue entry %d: %w", id, store.ErrNotFound)
}

// Retry makes a message's pending recipients due now and wakes the queue.
func (q *Queue) Retry(ctx context.Context, id int64) error {
	if err := q.st.RetryQueue(ctx, id); err != nil {
		return err
	}
	q.Kick()
	return nil
}

// Drop removes a message from the queue without delivering it further and without
// telling its sender. A delivery attempt already in progress still completes; its
// outcome is not recorded, though a bounce it causes is still sent.
func (q *Queue) Drop(ctx context.Context, id int64) error {
	return q.st.DropQueue(ctx, id)
}
