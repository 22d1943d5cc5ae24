package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// cmdHealth is `coibox health`: it asks the running server's /healthz on the
// configured HTTP listener, and with --wait keeps asking until the answer is healthy
// or the time is up. install.sh uses it after a start or an upgrade, and it suits a
// container's health check; it needs neither curl nor wget.
func cmdHealth(ctx context.Context, e *env, configPath string, args []string) error {
	fs := newFlagSet("health")
	fs.StringVar(&configPath, "config", configPath, "config file")
	url := fs.String("url", "", "the /healthz URL (default: on listen.http)")
	wait := fs.Duration("wait", 0, "keep trying this long until healthy")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	if *url == "" {
		cfg, _, err := loadConfig(configPath)
		if err != nil {
			return err
		}
		if cfg.Listen.HTTP == "" {
			return errors.New("health: listen.http is off; give --url")
		}
		host, port, err := net.SplitHostPort(cfg.Listen.HTTP)
		if err != nil {
			return fmt.Errorf("health: listen.http: %w", err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		*url = "http://" + net.JoinHostPort(host, port) + "/healthz"
	}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(*wait)
	for {
		body, err := probeHealth(ctx, client, *url)
		if err == nil {
			_, _ = io.WriteString(e.stdout, body)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("health: %s: %w", *url, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func probeHealth(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}
