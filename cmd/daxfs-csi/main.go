// Command daxfs-csi is the one binary of the project: the CSI server, the
// controller, and the image and pool tools. Each subcommand lives in its own
// file and registers itself, so concerns stay apart.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one leaf of the command tree, named by its words ("image build").
type command struct {
	name    string
	summary string
	run     func(args []string) error
}

var commands = map[string]*command{}

// register adds a subcommand; name is its words separated by spaces.
func register(name, summary string, run func(args []string) error) {
	if _, dup := commands[name]; dup {
		panic("daxfs-csi: command registered twice: " + name)
	}
	commands[name] = &command{name: name, summary: summary, run: run}
}

// exitError carries a specific exit status (e.g. 1 for a failed verify)
// after the message has already been printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError makes main print the usage of the command and exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseFlags parses a command's flags: -h passes through as flag.ErrHelp,
// anything else wrong is a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 1 {
		switch args[0] {
		case "-h", "-help", "--help":
			args = []string{"help"}
		case "-version", "--version":
			args = []string{"version"}
		}
	}
	cmd, rest := find(args)
	if cmd == nil {
		// "pool --help": the commands under a group word.
		if n := len(args); n > 1 && isHelpFlag(args[n-1]) {
			return dispatch(append([]string{"help"}, args[:n-1]...))
		}
		printUsage(os.Stderr, args)
		return 2
	}
	err := cmd.run(rest)
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "daxfs-csi %s: %s\n", cmd.name, ue.msg)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "daxfs-csi %s: %v\n", cmd.name, err)
		return 1
	}
}

// find picks the longest registered command that prefixes args.
func find(args []string) (*command, []string) {
	for n := len(args); n > 0; n-- {
		if c, ok := commands[strings.Join(args[:n], " ")]; ok {
			return c, args[n:]
		}
	}
	return nil, args
}

func isHelpFlag(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// matching names the commands that start with the words of prefix.
func matching(prefix string) []string {
	var names []string
	for n := range commands {
		if prefix == "" || n == prefix || strings.HasPrefix(n, prefix+" ") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// printUsage lists the commands that start with args, or all of them after
// saying that none does.
func printUsage(w io.Writer, args []string) {
	prefix := strings.Join(args, " ")
	names := matching(prefix)
	if len(names) == 0 {
		fmt.Fprintf(w, "daxfs-csi: unknown command %q\n", prefix)
		names = matching("")
	}
	fmt.Fprintln(w, "usage: daxfs-csi COMMAND [flags] [args]")
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\n`daxfs-csi COMMAND -h` prints a command's flags; `daxfs-csi --version` the version and commit.")
}
