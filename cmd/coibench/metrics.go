package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// commitStats are the store's group-commit counters, from the server's /metrics.
type commitStats struct {
	commits  float64 // transactions committed
	writes   float64 // writes they carried (sum of batch sizes)
	duration float64 // seconds spent committing, fsync included
}

// scrapeCommits reads the store's commit histograms' sums and counts from a Prometheus
// text endpoint.
func scrapeCommits(ctx context.Context, url string) (commitStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return commitStats{}, fmt.Errorf("scrape metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return commitStats{}, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return commitStats{}, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	return parseCommits(resp.Body)
}

func parseCommits(r io.Reader) (commitStats, error) {
	var st commitStats
	fields := map[string]*float64{
		"coibox_store_commit_batch_size_count": &st.commits,
		"coibox_store_commit_batch_size_sum":   &st.writes,
		"coibox_store_commit_seconds_sum":      &st.duration,
	}
	found := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		p := fields[name]
		if !ok || p == nil {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return st, fmt.Errorf("parse metric %s: %w", name, err)
		}
		*p = v
		found++
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("read metrics: %w", err)
	}
	if found != len(fields) {
		return st, fmt.Errorf("metrics lack the store's commit histograms")
	}
	return st, nil
}
