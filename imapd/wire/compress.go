package wire

import (
	"compress/flate"
	"fmt"
	"io"
)

// Compress layers COMPRESS=DEFLATE (RFC 4978: raw deflate both ways) over a
// connection. Pass the session's buffered reader as r so that no byte it
// has already read is lost, and the connection as w; then Reset the Reader
// and Writer onto the results. Flush the Writer before calling: the tagged
// OK of COMPRESS goes out uncompressed.
//
// The returned writer sync-flushes after every Write: the session's
// buffered Writer calls it once per Flush, so each burst of responses
// reaches the client whole. BestSpeed keeps per-connection memory low.
func Compress(r io.Reader, w io.Writer) (io.Reader, io.Writer) {
	fw, err := flate.NewWriter(w, flate.BestSpeed)
	if err != nil {
		panic(fmt.Sprintf("flate.NewWriter with a valid level: %v", err))
	}
	return flate.NewReader(r), &flushWriter{fw: fw}
}

type flushWriter struct{ fw *flate.Writer }

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.fw.Write(p)
	if err != nil {
		return n, fmt.Errorf("deflate: %w", err)
	}
	if err := f.fw.Flush(); err != nil {
		return n, fmt.Errorf("flush deflate: %w", err)
	}
	return n, nil
}
