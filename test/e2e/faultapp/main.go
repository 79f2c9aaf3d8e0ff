// Command faultapp is a deliberately broken stand-in for the chat server, used
// by the end-to-end fault scenarios: it never becomes healthy, crashes at
// start, or answers /healthz with the wrong color, so the harness can check
// that the deploy agent refuses it while the old color keeps serving.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	mode := flag.String("mode", "never-healthy", "never-healthy | crash | wrong-color")
	flag.Parse()
	if err := run(*mode); err != nil {
		fmt.Fprintln(os.Stderr, "faultapp:", err)
		os.Exit(1)
	}
}

func run(mode string) error {
	color := os.Getenv("APP_COLOR")
	var handler http.HandlerFunc
	switch mode {
	case "crash":
		return fmt.Errorf("crashing on start, as asked")
	case "never-healthy":
		handler = func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"status":"broken"}`, http.StatusInternalServerError)
		}
	case "wrong-color":
		// Report the color that is not ours, the way a misrouted or
		// misconfigured release would.
		other := "blue"
		if color == "blue" {
			other = "green"
		}
		handler = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "color": other, "version": "fault"})
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	mux := http.NewServeMux()
	mux.Handle("/", handler)
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// Where the agent runs the data path over unix sockets it health-checks the color there
	// (CHAT_SOCKET), as the chat server serves: without it every fault would stop at the health
	// gate, and the wrong color would never reach the verify through nginx it is there to fail.
	if path := os.Getenv("CHAT_SOCKET"); path != "" {
		_ = os.Remove(path) // a stale socket of an earlier container of this color
		ln, err := net.Listen("unix", path)
		if err != nil {
			return err
		}
		if err := os.Chmod(path, 0o666); err != nil { // nginx's workers run as another user
			return err
		}
		go func() { _ = srv.Serve(ln) }()
	}
	return srv.ListenAndServe()
}
