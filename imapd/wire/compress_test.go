package wire

import (
	"bufio"
	"compress/flate"
	"context"
	"io"
	"net"
	"testing"
)

// TestCompress runs COMPRESS DEFLATE between a server using Compress and a
// client doing raw deflate itself: the OK goes out in clear, everything
// after it compressed, and each flushed burst arrives whole.
func TestCompress(t *testing.T) {
	sconn, cconn := net.Pipe()
	defer cconn.Close()
	done := make(chan error, 1)
	go func() {
		defer sconn.Close()
		ctx := context.Background()
		r := NewReader(sconn, Limits{})
		w := NewWriter(sconn)
		cmd, err := r.ReadCommand(ctx)
		if err != nil {
			done <- err
			return
		}
		w.OK(cmd.Tag, "", "DEFLATE active")
		if err := w.Flush(); err != nil {
			done <- err
			return
		}
		cr, cw := Compress(r.BufferedReader(), sconn)
		r.Reset(cr)
		w.Reset(cw)
		for i := 0; i < 2; i++ {
			cmd, err := r.ReadCommand(ctx)
			if err != nil {
				done <- err
				return
			}
			w.OK(cmd.Tag, "", cmd.Name+" completed")
			if err := w.Flush(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	br := bufio.NewReader(cconn)
	if _, err := io.WriteString(cconn, "z COMPRESS DEFLATE\r\n"); err != nil {
		t.Fatal(err)
	}
	if line, _ := br.ReadString('\n'); line != "z OK DEFLATE active\r\n" {
		t.Fatalf("COMPRESS reply %q", line)
	}
	fw, _ := flate.NewWriter(cconn, flate.DefaultCompression)
	zr := bufio.NewReader(flate.NewReader(br))
	for _, c := range []struct{ send, want string }{
		{"a NOOP\r\n", "a OK NOOP completed\r\n"},
		{"b CAPABILITY\r\n", "b OK CAPABILITY completed\r\n"},
	} {
		if _, err := io.WriteString(fw, c.send); err != nil {
			t.Fatal(err)
		}
		if err := fw.Flush(); err != nil {
			t.Fatal(err)
		}
		line, err := zr.ReadString('\n')
		if err != nil || line != c.want {
			t.Fatalf("reply %q, %v; want %q", line, err, c.want)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
