package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "plain",
			stat: "1234 (coibox) S 1 1234 1234 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 9 0 100 1000000 3000 18446744073709551615",
			want: 175 * clockTick,
		},
		{
			name: "command with spaces and parentheses",
			stat: "99 (a (b) c) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 100 10 0",
			want: 10 * clockTick,
		},
		{name: "truncated", stat: "1 (x) S 1 2 3", wantErr: true},
		{name: "no command", stat: "garbage", wantErr: true},
		{name: "not a number", stat: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tc.stat))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("cpu = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseStatusMemory(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    memory
		wantErr bool
	}{
		{
			name:   "both",
			status: "Name:\tcoibox\nVmPeak:\t  900 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    2048 kB\nThreads:\t9\n",
			want:   memory{RSS: 10 << 20, Peak: 20 << 20, Anon: 2 << 20},
		},
		{name: "missing HWM", status: "VmRSS:\t 1 kB\n", wantErr: true},
		{name: "odd unit", status: "VmRSS:\t 1 MB\nVmHWM:\t 1 kB\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatusMemory([]byte(tc.status))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Errorf("memory = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestOwnProcess reads this test's own /proc entries, which must parse.
func TestOwnProcess(t *testing.T) {
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Errorf("memory %+v: want 0 < RSS <= peak", m)
	}
}

func TestMatrix(t *testing.T) {
	tests := []struct {
		sizes, conc string
		wantSizes   []int64
		wantConc    []int
		wantErr     bool
	}{
		{sizes: "4KB,100KB", conc: "1,16,64", wantSizes: []int64{4000, 100_000}, wantConc: []int{1, 16, 64}},
		{sizes: "1KiB", conc: " 2 ", wantSizes: []int64{1024}, wantConc: []int{2}},
		{sizes: "4KB", conc: "0", wantErr: true},
		{sizes: "lots", conc: "1", wantErr: true},
		{sizes: "0", conc: "1", wantErr: true},
	}
	for _, tc := range tests {
		f := smtpFlags{sizes: tc.sizes, conc: tc.conc, messages: 1, perConn: 1}
		sizes, concs, err := f.matrix()
		if (err != nil) != tc.wantErr {
			t.Errorf("%q %q: err = %v, want error %v", tc.sizes, tc.conc, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && (!slices.Equal(sizes, tc.wantSizes) || !slices.Equal(concs, tc.wantConc)) {
			t.Errorf("%q %q: got %v %v, want %v %v", tc.sizes, tc.conc, sizes, concs, tc.wantSizes, tc.wantConc)
		}
	}
}

// TestMessageSize checks that generated messages have about the size asked for, since
// the benchmark reports its figures per size.
func TestMessageSize(t *testing.T) {
	for _, size := range []int64{4000, 100_000} {
		msg := messageWithHeader(1, 1, "user1@"+benchDomain, messageBody(size))
		if got := int64(len(msg)); got < size*95/100 || got > size*105/100 {
			t.Errorf("message for size %d is %d bytes, want within 5%%", size, got)
		}
		if !bytes.Contains(msg, []byte("\r\n\r\n")) || bytes.Contains(msg, []byte("\r\n.")) {
			t.Errorf("message for size %d: want a header, a body and no line starting with a dot", size)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{4000: "4KB", 100_000: "100KB", 2_000_000: "2MB", 1024: "1024B"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{args: nil, wantCode: 2, wantErr: "smtp"},
		{args: []string{"nope"}, wantCode: 2, wantErr: `unknown benchmark "nope"`},
		{args: []string{"smtp", "-h"}, wantCode: 0, wantErr: "-per-conn"},
		{args: []string{"smtp", "-sizes", "x"}, wantCode: 2, wantErr: "bad size"},
		{args: []string{"smtp", "extra"}, wantCode: 2, wantErr: "unexpected argument"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.wantCode || !strings.Contains(errb.String(), tc.wantErr) {
			t.Errorf("coibench %v: code %d, stderr %q; want code %d and %q", tc.args, code, errb.String(), tc.wantCode, tc.wantErr)
		}
	}
}

// TestSMTPSmoke runs a tiny benchmark against a freshly built server and checks that the
// report holds together: every message acknowledged and found in the store.
func TestSMTPSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts coibox")
	}
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"smtp", "-sizes", "2KB", "-conc", "1,3", "-messages", "30", "-per-conn", "2",
		"-starts", "2", "-warmup", "5", "-json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", code, errb.String())
	}
	var rep smtpReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if len(rep.Runs) != 2 || len(rep.StartToListen) != 2 || rep.IdleRSS <= 0 || rep.ServerPID == 0 {
		t.Fatalf("incomplete report: %+v", rep)
	}
	for _, r := range rep.Runs {
		if r.Acked != 30 || r.Stored != 30 || !r.StoredOK || r.PerSecond <= 0 || r.ServerPeakRSS <= 0 || r.Commits == 0 {
			t.Errorf("run %+v: want 30 acknowledged and stored, with server figures", r)
		}
	}
}

// TestSoakSmoke is the short version of coibench soak that CI runs: 100 idling
// connections, 15 s of ingest and fetches. Every acknowledged message must be
// fetchable, every connection still idling at the end, the store consistent, and the
// server's goroutines must not grow with the load nor outlive the connections. The
// RSS slope is reported, not judged: a short run on a shared machine is all noise.
func TestSoakSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts coibox")
	}
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"soak", "-duration", "15s", "-warmup", "5s", "-conns", "100", "-users", "10",
		"-rate", "20", "-sample", "1s", "-json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", code, errb.String())
	}
	var rep soakReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	t.Logf("acked %d, fetched %d; RSS slope %+.2f MiB/min; goroutines %d before, %d warm, %d at the end, %d after",
		rep.Acked, rep.Fetched, rep.RSSSlope, rep.GoroutinesBefore, rep.GoroutinesWarm, rep.GoroutinesEnd, rep.GoroutinesAfter)
	if rep.FirstError != "" {
		t.Errorf("first error: %s", rep.FirstError)
	}
	if rep.Acked < 100 || rep.Refused != 0 || rep.Fetchable != rep.Acked || rep.Fetched == 0 {
		t.Errorf("acked %d, refused %d, fetchable %d, fetched %d: want 100+ acknowledged, all fetchable, none refused",
			rep.Acked, rep.Refused, rep.Fetchable, rep.Fetched)
	}
	if rep.Idling != rep.Conns || !rep.VerifyOK || len(rep.Samples) < 10 {
		t.Errorf("idling %d of %d, verify %v, %d samples", rep.Idling, rep.Conns, rep.VerifyOK, len(rep.Samples))
	}
	// A goroutine per connection is expected; one per message or per fetch is a leak.
	if rep.GoroutinesEnd > rep.GoroutinesWarm+20 || rep.GoroutinesAfter > rep.GoroutinesBefore+10 {
		t.Errorf("goroutines grew: %d before, %d warm, %d at the end, %d after the clients left",
			rep.GoroutinesBefore, rep.GoroutinesWarm, rep.GoroutinesEnd, rep.GoroutinesAfter)
	}
}
