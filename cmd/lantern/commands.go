package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	goio "io"
	"strings"
)

// command is one subcommand, such as "attest sign".
type command struct {
	name    string
	args    string // the positional arguments, for the usage line
	summary string
	long    string
	flags   func(fs *flag.FlagSet) func(ctx context.Context, io *stdio, args []string) error
}

func commands() []command {
	return []command{
		keygenCommand(),
		claimSignCommand(),
		claimVerifyCommand(),
		claimYankCommand(),
		claimRevokeCommand(),
		attestSignCommand(),
		attestVerifyCommand(),
		schedulerCommand(),
		workerCommand(),
		upCommand(),
		builderAddCommand(),
		builderRemoveCommand(),
		builderListCommand(),
		rebuildCommand(),
		verdictCommand(),
		statusCommand(),
		policyVerifyCommand(),
	}
}

func run(ctx context.Context, args []string, io *stdio) error {
	if len(args) == 0 {
		printUsage(io.err)
		return usagef("no command given")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return run(ctx, append(args[1:], "--help"), io)
		}
		printUsage(io.out)
		return errHelp
	}
	cmds := commands()
	// Find the longest command name that prefixes args ("attest sign" before "attest").
	for _, c := range cmds {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c.run(ctx, io, args[len(words):])
		}
	}
	var group []string
	for _, c := range cmds {
		if first, _, _ := strings.Cut(c.name, " "); first == args[0] {
			group = append(group, c.name)
		}
	}
	if len(group) > 0 {
		if len(args) > 1 && args[1] != "--help" && args[1] != "-h" {
			return usagef("unknown command %q: %q has %s", strings.Join(args[:2], " "), args[0], strings.Join(group, ", "))
		}
		fmt.Fprintf(io.out, "%q has these commands:\n", args[0])
		for _, c := range cmds {
			if first, _, _ := strings.Cut(c.name, " "); first == args[0] {
				fmt.Fprintf(io.out, "  lantern %-16s %s\n", c.name, c.summary)
			}
		}
		if len(args) > 1 {
			return errHelp
		}
		return usagef("%q needs a command: %s", args[0], strings.Join(group, ", "))
	}
	return usagef("unknown command %q", args[0])
}

func (c command) run(ctx context.Context, io *stdio, args []string) error {
	fs := flag.NewFlagSet("lantern "+c.name, flag.ContinueOnError)
	fs.SetOutput(goio.Discard) // errors are returned, help is printed below
	body := c.flags(fs)
	printHelp := func(out goio.Writer) {
		fmt.Fprintf(out, "Usage: lantern %s [flags] %s\n\n%s\n", c.name, c.args, c.long)
		fmt.Fprintln(out, "\nFlags:")
		fs.SetOutput(out)
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(io.out)
		return errHelp
	}
	if err != nil {
		return &usageError{msg: fmt.Sprintf("%s: %v", c.name, err), cmd: c.name}
	}
	err = body(ctx, io, positional)
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd == "" {
		ue.cmd = c.name
	}
	return err
}

// parseInterspersed parses flags wherever they stand among the positional
// arguments, so that "verify ENVELOPE --key k.pub" works as well as
// "verify --key k.pub ENVELOPE". A "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func printUsage(w goio.Writer) {
	fmt.Fprint(w, `lantern — a reproducible-build verifier farm.

Independent builders rebuild published software from its source, compare the
bytes, and sign what they saw. These commands make keys and sign and verify
the claims and attestations.

Usage: lantern <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'lantern <command> --help' for a command's flags and an example.

Exit codes: 0 success, 1 the work failed (for example a signature that does
not verify) or not yet (too few agree), 2 the command line was wrong, 3
contradicted (a mismatch, a conflict).
`)
}
