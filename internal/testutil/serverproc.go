package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ServerProc is a `coibox serve` process started from a built binary, for end-to-end
// tests and benchmarks that need the real program: signals, crashes, /proc figures.
// Its methods report errors instead of failing a test, so a benchmark command can use it.
type ServerProc struct {
	cmd *exec.Cmd
	// Started is taken just before the process was started.
	Started time.Time
	// Listening is how long after Started the first awaited address accepted a TCP
	// connection.
	Listening time.Duration

	out  *lockedBuffer
	done chan struct{}
	err  error // from cmd.Wait; read only after done is closed
}

// keepOutput bounds the output a ServerProc keeps: a benchmark's server logs a line per
// message, and only the end matters when something fails.
const keepOutput = 1 << 20

// lockedBuffer collects a process's output, which its copying goroutines write while a
// test may read it. Past keepOutput bytes it drops the older half.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee io.Writer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tee != nil {
		_, _ = b.tee.Write(p) // a failing log writer must not stop the server
	}
	if b.buf.Len()+len(p) > keepOutput {
		keep := b.buf.Bytes()[b.buf.Len()/2:]
		b.buf = *bytes.NewBuffer(append([]byte("[…]\n"), keep...))
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartServerProc runs `bin serve --config configPath` and waits until every address in
// waitFor accepts TCP connections, at most timeout. The process's stdout and stderr are
// kept (Output) and also written to log if it is not nil. If the process exits or the
// addresses do not open in time, it is killed and an error carrying its output returned.
func StartServerProc(ctx context.Context, bin, configPath string, waitFor []string, timeout time.Duration, log io.Writer) (*ServerProc, error) {
	p := &ServerProc{out: &lockedBuffer{tee: log}, done: make(chan struct{})}
	// Not CommandContext: the caller decides when the server stops and how (SIGTERM,
	// SIGKILL), which is what the tests are about.
	p.cmd = exec.Command(bin, "serve", "--config", configPath)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.Started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	deadline := p.Started.Add(timeout)
	for i, addr := range waitFor {
		if err := p.waitAddr(ctx, addr, deadline); err != nil {
			_ = p.Kill()
			return nil, fmt.Errorf("wait for %s: %w\n%s", addr, err, p.Output())
		}
		if i == 0 {
			p.Listening = time.Since(p.Started)
		}
	}
	return p, nil
}

// waitAddr polls addr until it accepts a connection. It polls every 200µs at first, so
// that the time to listen is measured finely, and backs off to 5ms.
func (p *ServerProc) waitAddr(ctx context.Context, addr string, deadline time.Time) error {
	pause := 200 * time.Microsecond
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("server exited: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening after %v: %w", time.Since(p.Started).Round(time.Millisecond), err)
		}
		time.Sleep(pause)
		pause = min(pause*2, 5*time.Millisecond)
	}
}

// WaitHealthy polls url (the server's /healthz) until it answers 200 OK, at most
// timeout. The listeners open before the store does, so a server that accepts
// connections may still be starting; this waits until it is ready to do work.
func (p *ServerProc) WaitHealthy(ctx context.Context, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("health check: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case <-p.done:
			return fmt.Errorf("health check: server exited: %v\n%s", p.err, p.Output())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("health check %s: not healthy after %v: %w", url, timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Pid is the server's process ID.
func (p *ServerProc) Pid() int { return p.cmd.Process.Pid }

// Output is everything the server printed so far.
func (p *ServerProc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *ServerProc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the server.
func (p *ServerProc) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal server: %w", err)
	}
	return nil
}

// Wait waits at most timeout for the process to exit and returns its exit code (-1 if
// a signal ended it).
func (p *ServerProc) Wait(timeout time.Duration) (int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-t.C:
		return 0, fmt.Errorf("server (pid %d) still running after %v", p.Pid(), timeout)
	}
}

// Stop asks the server to shut down with SIGTERM and returns its exit code. If it has not
// exited after grace it is killed, and Stop returns an error saying so.
func (p *ServerProc) Stop(grace time.Duration) (int, error) {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	code, err := p.Wait(grace)
	if err == nil {
		return code, nil
	}
	_ = p.Kill()
	return -1, fmt.Errorf("stop server: %w; killed it", err)
}

// Kill ends the server with SIGKILL, as a crash or power cut would, and waits for it.
func (p *ServerProc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}
