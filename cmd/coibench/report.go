package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// targetCheck compares one figure with the goal set for it.
type targetCheck struct {
	What  string  `json:"what"`
	Goal  string  `json:"goal"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Met   bool    `json:"met"`
}

// The goals coibox is measured against.
const (
	goalPerSecond  = 1500 // durable 4 KB messages/s at concurrency 16
	goalCPUPerMsg  = 1.0  // ms of server CPU per message
	goalIdleRSS    = 20 << 20
	goalListenTime = 50.0 // ms from process start to listening
)

// checkTargets compares the report with the goals, for the figures it has.
func checkTargets(rep *smtpReport) []targetCheck {
	var out []targetCheck
	for _, r := range rep.Runs {
		if r.Size == 4000 && r.Concurrency == 16 {
			out = append(out, targetCheck{"4KB messages/s at concurrency 16, stored", fmt.Sprintf("≥ %d", goalPerSecond), r.PerSecond, "msg/s", r.PerSecond >= goalPerSecond && r.StoredOK})
			if r.ServerCPUPerMsgMs > 0 {
				out = append(out, targetCheck{"server CPU per 4KB message at concurrency 16", fmt.Sprintf("< %.0f ms", goalCPUPerMsg), r.ServerCPUPerMsgMs, "ms", r.ServerCPUPerMsgMs < goalCPUPerMsg})
			}
		}
	}
	if rep.IdleRSS > 0 {
		out = append(out, targetCheck{"idle RSS after start", "< 20 MB", mb(rep.IdleRSS), "MB", rep.IdleRSS < goalIdleRSS})
	}
	if rep.ListenMedian > 0 {
		out = append(out, targetCheck{"start to listening (median)", fmt.Sprintf("< %.0f ms", goalListenTime), rep.ListenMedian, "ms", rep.ListenMedian < goalListenTime})
	}
	return out
}

func printSMTPTable(w io.Writer, rep *smtpReport) error {
	pipe := "without pipelining"
	if rep.Pipelining {
		pipe = "with pipelining"
	}
	fmt.Fprintf(w, "coibox SMTP ingest on %s, %s (server pid %d, %d CPUs shared with the client)\n", rep.Target, pipe, rep.ServerPID, rep.CPUs)
	if rep.ListenMedian > 0 {
		fmt.Fprintf(w, "start to listening: median %.1f ms over %d starts %v", rep.ListenMedian, len(rep.StartToListen), rounded(rep.StartToListen))
		if rep.MainMedian > 0 {
			fmt.Fprintf(w, "; of which from main() on: median %.1f ms", rep.MainMedian)
		}
		fmt.Fprintln(w)
	}
	if rep.IdleRSS > 0 {
		fmt.Fprintf(w, "idle RSS after start: %.1f MB (anonymous %.1f MB; the rest is file-backed, mostly the binary's pages)\n", mb(rep.IdleRSS), mb(rep.IdleAnon))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\tconc\tper conn\tacked\tmsg/s\tp50 ms\tp99 ms\tserver CPU/msg ms\tclient CPU/msg ms\tpeak RSS MB\twrites/commit\tcommit ms\tstored\t")
	for _, r := range rep.Runs {
		stored := "not counted"
		switch {
		case r.Stored < 0:
		case r.StoredOK:
			stored = fmt.Sprintf("%d ok", r.Stored)
		default:
			stored = fmt.Sprintf("%d MISMATCH", r.Stored)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d/%d\t%.0f\t%.1f\t%.1f\t%s\t%.2f\t%s\t%s\t%s\t%s\t\n",
			humanBytes(r.Size), r.Concurrency, r.PerConn, r.Acked, r.Sent, r.PerSecond, r.P50ms, r.P99ms,
			orDash(r.ServerCPUPerMsgMs, "%.2f"), r.ClientCPUPerMsgMs, orDash(mb(r.ServerPeakRSS), "%.1f"),
			orDash(r.WritesPerTx, "%.1f"), orDash(r.CommitMeanMs, "%.2f"), stored)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Runs {
		if r.FirstProb != "" {
			fmt.Fprintf(w, "%s × %d: %d refused, %d errors; first: %s\n", humanBytes(r.Size), r.Concurrency, r.Refused, r.Errors, r.FirstProb)
		}
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range rep.Targets {
			verdict := "met"
			if !c.Met {
				verdict = "MISSED"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%.2f %s\t%s\n", c.What, c.Goal, c.Value, c.Unit, verdict)
		}
		return tw.Flush()
	}
	return nil
}

func orDash(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func rounded(xs []float64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.1f", x)
	}
	return out
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// humanBytes writes a size the way -sizes takes it (powers of 1000, like config sizes).
func humanBytes(n int64) string {
	switch {
	case n >= 1000_000 && n%1000_000 == 0:
		return fmt.Sprintf("%dMB", n/1000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dKB", n/1000)
	}
	return fmt.Sprintf("%dB", n)
}
