package main

import (
	"os"
	"strings"
)

func init() {
	register("help", "list the commands, or print the usage of one (help COMMAND)", runHelp)
}

// runHelp answers `help`, `--help` and `-h` on stdout with exit 0: the
// command list, the commands under a group word, or one command's own -h.
// Words that name no command are a usage error (list on stderr, exit 2).
func runHelp(words []string) error {
	if n := len(words); n > 0 && isHelpFlag(words[n-1]) {
		words = words[:n-1]
	}
	prefix := strings.Join(words, " ")
	if c, ok := commands[prefix]; ok && prefix != "help" {
		return c.run([]string{"-h"})
	}
	if len(matching(prefix)) == 0 {
		printUsage(os.Stderr, words)
		return exitError{2}
	}
	printUsage(os.Stdout, words)
	return nil
}
