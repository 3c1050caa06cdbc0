// Command spamsurge is an inline SMTP/LMTP hop that notices when a leaked
// address list starts being spammed. See README.md.
//
// main only parses flags, turns signals into a context and calls into the
// packages; one file per subcommand.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: it parses its own flags from args and returns
// the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"serve":    {"run the proxy, the detector and the HTTP endpoints", runServe},
		"version":  {"print the version", runVersion},
		"demo":     {"watch a leak being caught: self-contained, about a minute", runDemo},
		"replay":   {"feed recorded observations through the detector (bootstraps the store)", runReplay},
		"simulate": {"write a synthetic observation stream with a known truth", runSimulate},
		"resolve":  {"print the addresses from a file that belong to an incident", runResolve},
	}
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
	c, ok := cmds[args[0]]
	if !ok {
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
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: spamsurge COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'spamsurge COMMAND -h' for a command's flags.")
}
