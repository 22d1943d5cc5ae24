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
	body, err := getMetrics(ctx, url)
	if err != nil {
		return commitStats{}, err
	}
	defer body.Close()
	return parseCommits(body)
}

// getMetrics fetches a Prometheus text endpoint; the caller closes the body. The
// timeout covers reading the body too.
func getMetrics(ctx context.Context, url string) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	return cancelOnClose{resp.Body, cancel}, nil
}

// cancelOnClose releases a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
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
