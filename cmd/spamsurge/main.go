// Command spamsurge is an inline SMTP/LMTP hop that notices when a leaked
// address list starts being spammed. See README.md.
//
// main only parses flags, turns signals into a context (and SIGHUP into a
// reload, serve.go) and calls into the packages; the serving process
// itself is package daemon. One file per subcommand, one runner for their
// flags and errors.
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

// command is one subcommand. The runner (execute) builds its flag set and
// usage text, parses once and reports what run returns, so that no
// command repeats that prologue.
type command struct {
	name    string
	summary string // its line in `spamsurge -h`
	args    string // the synopsis after "spamsurge NAME", for NAME -h
	help    string // what it does, for NAME -h
	// flags defines the command's flags on fs (nil: none); run reads them
	// once fs is parsed.
	flags func(fs *flag.FlagSet)
	run   func(ctx context.Context, e *env) error
}

// env is what a command runs with: the arguments left after its flags and
// the process's output.
type env struct {
	args           []string
	stdout, stderr io.Writer
}

// errUsage is a command line that makes no sense (a missing flag, a
// stray argument): the runner prints the usage and exits 2.
var errUsage = errors.New("usage")

// usageError is an error from the command line or the config file, found
// before any work was done: printed like any error, but exit status 2,
// like a bad flag.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitStatus ends a command with that status without a message: the
// command has already said why (serve, in its log).
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

func commands() []command {
	// In the order `spamsurge -h` lists them.
	return []command{convertCommand(), demoCommand(), replayCommand(), resolveCommand(), serveCommand(), simulateCommand(), versionCommand()}
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var c *command
	for i := range cmds {
		if cmds[i].name == args[0] {
			c = &cmds[i]
		}
	}
	if c == nil {
		fmt.Fprintf(stderr, "spamsurge: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	// The first SIGINT/SIGTERM cancels ctx (graceful shutdown); a second
	// one, once ctx is done, is not caught any more and kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	defer stop()
	return c.execute(ctx, args[1:], stdout, stderr)
}

// execute parses the command's flags from args, runs it and turns its
// error into the exit status: 0, 1 for a failure, 2 for a usage error.
// Every error is printed once, as "spamsurge NAME: error".
func (c *command) execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if c.flags != nil {
		c.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: spamsurge %s\n\n%s\n", strings.TrimSpace(c.name+" "+c.args), c.help)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(stderr, "\nflags:")
			fs.PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h asked for the usage: printed, nothing wrong
		}
		return 2 // flag has printed the error
	}
	err := c.run(ctx, &env{args: fs.Args(), stdout: stdout, stderr: stderr})
	var status exitStatus
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fs.Usage()
		return 2
	case errors.As(err, &status):
		return int(status)
	}
	fmt.Fprintf(stderr, "spamsurge %s: %v\n", c.name, err)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

func usage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "usage: spamsurge COMMAND [flags]\n\ncommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'spamsurge COMMAND -h' for a command's flags.")
}
