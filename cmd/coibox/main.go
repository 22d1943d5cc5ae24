// Command coibox is the mail and chat server: `coibox serve` runs every listener, and the
// other subcommands administer the store (accounts, domains, aliases, backup, verify).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// version is set at link time with -ldflags "-X main.version=v1.2.3"; when it is not,
// the VCS revision recorded by the Go toolchain stands in.
var version string

const usageText = `usage: coibox [--config FILE] COMMAND [ARGS]

Commands:
  quickstart ADDRESS                 set up a server for ADDRESS's domain in one go:
                                     config (unless one exists), domain, DKIM keys,
                                     the account (password printed once), the DNS
                                     records, checks; flags --hostname, --data-dir,
                                     --tls acme|selfsigned, --acme-email, --resolver,
                                     --no-checks; safe to run again
  serve [--log-format text|json]     run every listener until SIGTERM or SIGINT
  account add ADDRESS                add an account; the password is read from stdin
                                     (one line), or generated and printed when stdin
                                     is a terminal or empty
  account passwd ADDRESS             set an account's password (stdin as for add)
  account set ADDRESS KEY=VALUE...   quota=SIZE|default|unlimited, messages=N|unlimited,
                                     enforce_e2ee_incoming=on|off, coi_filing=on|off
  account del ADDRESS                delete an account with all its mail
  account list                       list accounts
  domain add [--chatmail] DOMAIN     serve a domain
  domain del [--force] DOMAIN        stop serving a domain; --force also deletes its
                                     accounts and their mail
  domain list                        list domains with a summary of their settings
  domain show DOMAIN                 list every setting of a domain's profile
  domain set DOMAIN KEY=VALUE...     change settings (chatmail spec §1 keys: see domain
                                     show); all or nothing
  dns DOMAIN                         print the DNS records DOMAIN needs (MX, SPF, DKIM,
                                     DMARC, MTA-STS, TLS-RPT, SRV, ...); domain add
                                     prints them too
  dns check DOMAIN                   look those records up and report each as OK,
                                     MISSING or WRONG; fails if a required one is
  alias add ADDRESS DESTINATION      deliver mail for ADDRESS to DESTINATION as well;
                                     ADDRESS "@domain" is the domain's catch-all
  alias del ADDRESS [DESTINATION]    remove one destination, or the whole alias
  alias list                         list aliases
  queue list                         list queued outgoing mail, a line per recipient
  queue show ID                      show a queued message with its last errors
  queue retry ID                     make its pending recipients due now
  queue drop ID                      delete it without delivering it or telling its
                                     sender
  backup DIR                         copy the database, tls/ and dkim/ into DIR while
                                     the server runs
  admin setup-link                   print a new one-time link to the admin page's
                                     first run (while no admin password is set)
  admin passwd                       set the admin page's password (stdin as for
                                     account add); ends every admin session
  restore [--force] DIR              put a backup back (the server stopped); --force
                                     replaces an existing database, moving it aside
  verify                             check the store's consistency
  health [--wait DURATION] [--url U] ask the running server's /healthz (on listen.http);
                                     exit 0 when healthy
  version                            print the version

--config FILE may come before or after the command's arguments. Without it coibox
reads ./coibox.toml if present, else runs the embedded local profile (127.0.0.1,
hostname localhost, data in ./coibox-data).
`

func main() {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	// The first SIGTERM or SIGINT starts a graceful stop; a second one means the
	// operator will not wait for it.
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigc
		cancel()
		sig := <-sigc
		fmt.Fprintf(os.Stderr, "coibox: second %v: exiting without waiting\n", sig)
		os.Exit(1)
	}()
	code := run(ctx, &env{start: start, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	cancel()
	os.Exit(code)
}

// env is what a command may touch of the process, so that run stays testable.
type env struct {
	start          time.Time // process start, for the time-to-listen measurement
	stdin          *os.File
	stdout, stderr io.Writer
}

// usageError is a mistake in the command line: it is reported with the usage text (of
// the command, when it is known) and exit code 2.
type usageError struct{ msg, command string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run executes one command line and returns the process's exit code.
func run(ctx context.Context, e *env, args []string) int {
	err := dispatch(ctx, e, args)
	var ue *usageError
	var he *helpError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &he):
		fmt.Fprint(e.stdout, commandUsage(he.command))
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(e.stdout, usageText)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "coibox: %s\n\n%s", ue.msg, commandUsage(ue.command))
		return 2
	default:
		// One line: the wrapped chain already reads as a sentence.
		fmt.Fprintf(e.stderr, "coibox: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
}

func dispatch(ctx context.Context, e *env, args []string) error {
	// Flags before the command: only --config (and -h).
	top := newFlagSet("coibox")
	configPath := top.String("config", "", "config file")
	if err := top.Parse(args); err != nil {
		return err
	}
	args = top.Args()
	if len(args) == 0 {
		return usagef("no command given")
	}
	name, args := args[0], args[1:]
	err := command(ctx, e, *configPath, name, args)
	var ue *usageError
	switch {
	case name == "help" && len(args) > 0:
		return &helpError{command: args[0]}
	case errors.Is(err, flag.ErrHelp) && name != "help":
		return &helpError{command: name}
	case errors.As(err, &ue) && ue.command == "" && commandUsage(name) != usageText:
		ue.command = name
	}
	return err
}

// helpError asks for one command's usage (coibox CMD -h, coibox help CMD).
type helpError struct{ command string }

func (e *helpError) Error() string { return "help for " + e.command }

// commandUsage is the part of usageText about one command: its lines and their
// continuations, under the synopsis; the whole text for an unknown command.
func commandUsage(name string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(usageText, "\n") {
		switch {
		case strings.HasPrefix(line, "  "+name+" ") || line == "  "+name:
			in = true
		case !strings.HasPrefix(line, "    "):
			in = false
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	if b.Len() == 0 {
		return usageText
	}
	return "usage: coibox [--config FILE] " + name + " ...\n\n" + b.String() +
		"\ncoibox help lists every command.\n"
}

// command runs the command name with its arguments.
func command(ctx context.Context, e *env, configPath, name string, args []string) error {
	switch name {
	case "serve":
		return cmdServe(ctx, e, configPath, args)
	case "quickstart":
		return cmdQuickstart(ctx, e, configPath, args)
	case "account", "accounts":
		return cmdAccount(ctx, e, configPath, args)
	case "domain", "domains":
		return cmdDomain(ctx, e, configPath, args)
	case "alias", "aliases":
		return cmdAlias(ctx, e, configPath, args)
	case "dns":
		return cmdDNS(ctx, e, configPath, args)
	case "queue":
		return cmdQueue(ctx, e, configPath, args)
	case "backup":
		return cmdBackup(ctx, e, configPath, args)
	case "verify":
		return cmdVerify(ctx, e, configPath, args)
	case "restore":
		return cmdRestore(ctx, e, configPath, args)
	case "admin":
		return cmdAdmin(ctx, e, configPath, args)
	case "health":
		return cmdHealth(ctx, e, configPath, args)
	case "version":
		if _, err := parseArgs(newFlagSet("version"), args, 0, 0); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "coibox %s (%s %s/%s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help":
		return flag.ErrHelp
	default:
		return usagef("unknown command %q", name)
	}
}

// newFlagSet returns a FlagSet that reports errors to run instead of printing them.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses fs's flags wherever they stand among args (the flag package stops at
// the first positional argument, but `account add a@b --config x` must work) and returns
// the positional arguments, checking there are between minPos and maxPos of them
// (maxPos < 0: no limit). Everything after "--" is positional.
func parseArgs(fs *flag.FlagSet, args []string, minPos, maxPos int) ([]string, error) {
	var pos, tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	pos = append(pos, tail...)
	switch {
	case len(pos) < minPos:
		return nil, usagef("%s: missing argument", fs.Name())
	case maxPos >= 0 && len(pos) > maxPos:
		return nil, usagef("%s: unexpected argument %q", fs.Name(), pos[maxPos])
	}
	return pos, nil
}

// versionString is the link-time version, else the VCS revision the build recorded,
// else the module version ("(devel)" for a plain go build).
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if rev != "" {
		return rev[:min(len(rev), 12)] + modified
	}
	return bi.Main.Version
}
