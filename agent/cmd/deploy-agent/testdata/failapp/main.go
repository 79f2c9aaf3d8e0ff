// Command failapp is a chat server stand-in that never becomes healthy: it logs why and exits,
// so the integration tests can check that a failing image is refused with its log tail.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "failapp: refusing to start: CHAT_SECRET is not set")
	os.Exit(1)
}
