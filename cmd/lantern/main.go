// Command lantern is the command line of Lantern, a reproducible-build
// verifier farm: it makes builder keys, signs source claims and rebuild
// attestations, and verifies them. Run `lantern help` for the commands.
//
// Exit codes: 0 success; 1 the work failed (a signature that does not
// verify, a file that cannot be read); 2 the command line was wrong; 3
// contradicted (a mismatch, a conflict).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], &stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	stop()
	os.Exit(exitCode(os.Stderr, err))
}

// stdio is what a command reads and writes besides files.
type stdio struct {
	in  *os.File
	out io.Writer
	err io.Writer
}

// usageError is a command line that cannot be run as given; it exits 2.
// cmd, when set, names the command whose --help to point to.
type usageError struct{ msg, cmd string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// contradictedError is an answer that contradicts what was asked about: a
// mismatch, a conflict. It exits 3.
type contradictedError struct{ msg string }

func (e *contradictedError) Error() string { return e.msg }

// errHelp is returned after help was printed on request; it exits 0.
var errHelp = errors.New("help printed")

func exitCode(w io.Writer, err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(w, "lantern: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.cmd != "" {
			fmt.Fprintf(w, "Run 'lantern %s --help' for usage.\n", ue.cmd)
		} else {
			fmt.Fprintln(w, "Run 'lantern help' for usage.")
		}
		return 2
	}
	var ce *contradictedError
	if errors.As(err, &ce) {
		return 3
	}
	return 1
}
