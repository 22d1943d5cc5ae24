// Command coibench measures coibox from the outside, as clients see it: `coibench smtp`
// times SMTP ingest into the store, `coibench imap` FETCH, SEARCH, IDLE latency and
// memory per connection, `coibench chat` first logins on a chatmail domain, the
// latency of encrypted chat messages on one host and over /mxdeliv, /mxdeliv against
// port-25 ingest, and idle chatmail connections, `coibench soak` memory and goroutines
// over a long mixed load; they read the server's CPU and memory from /proc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// benchmark is one subcommand. Adding a benchmark (say `coibench imap`) means writing
// its run function in its own file and adding it to benchmarks below.
type benchmark struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// benchmarks is the registry of subcommands, in the order usage lists them.
func benchmarks() []benchmark {
	return []benchmark{
		{name: "smtp", summary: "SMTP ingest on port 25: messages/s stored, server CPU and memory", run: runSMTP},
		{name: "imap", summary: "IMAP on a 10,000-message INBOX: FETCH, SEARCH, IDLE latency, memory per connection", run: runIMAP},
		{name: "chat", summary: "chatmail: first logins, chat latency (submission, /mxdeliv), /mxdeliv vs port-25 ingest, idle connections", run: runChat},
		{name: "soak", summary: "idling IMAP connections under sustained SMTP ingest and fetches: RSS slope, goroutines, nothing lost", run: runSoak},
	}
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: coibench BENCHMARK [flags]\n\nBenchmarks:\n")
	for _, bm := range benchmarks() {
		fmt.Fprintf(&b, "  %-8s %s\n", bm.name, bm.summary)
	}
	b.WriteString("\n`coibench BENCHMARK -h` lists a benchmark's flags.\n")
	_, _ = io.WriteString(w, b.String())
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a benchmark and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, bm := range benchmarks() {
		if bm.name != args[0] {
			continue
		}
		err := bm.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(stderr, "coibench %s: %v\n", bm.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "coibench: unknown benchmark %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage marks a command-line mistake that the flag package has already reported.
var errUsage = errors.New("usage error")

// parseFlags parses a benchmark's flags, printing its usage on error or -h.
// newFlagSet makes a subcommand's flag set: errors and usage (the text, then the
// flags' defaults) go to stderr.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "coibench %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
