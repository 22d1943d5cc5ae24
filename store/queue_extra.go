package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// NextQueueAttempt returns the earliest next attempt of a pending queue recipient that
// is later than after, or the zero time when there is none. The outbound queue sleeps
// until then; recipients already due are its own business (in flight or waiting for a
// free worker), hence the lower bound.
func (s *Store) NextQueueAttempt(ctx context.Context, after time.Time) (time.Time, error) {
	var next sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, "SELECT min(next_attempt) FROM queue_rcpts WHERE state = 'pending' AND next_attempt > ?", after.Unix()).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next queue attempt: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return time.Unix(next.Int64, 0), nil
}
