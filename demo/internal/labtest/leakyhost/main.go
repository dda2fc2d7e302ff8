// Command leakyhost writes into a directory the ip wrapper that makes every
// lab built with it on PATH start as if a leaky host's IPv4 settings
// (forwarding on, ARP announcing) had been copied into its namespaces, as
// new namespaces copy the host's: scripts/leaky-host runs a command with it.
package main

import (
	"fmt"
	"os"

	"github.com/sockshift/sockshift/demo/internal/labtest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: leakyhost DIR")
		os.Exit(2)
	}
	if err := labtest.WriteLeakyIP(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "leakyhost:", err)
		os.Exit(1)
	}
}
