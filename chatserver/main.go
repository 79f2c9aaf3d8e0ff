// Command chatserver serves the MyWebChat WebSocket chat.
package main

import (
	"encoding/json"
	"net/http"
	"os"
)

// Placeholder until the chat server lands: answers /healthz only.
func main() {
	addr := os.Getenv("CHAT_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"status": "ok", "color": os.Getenv("APP_COLOR"), "version": os.Getenv("APP_VERSION")})
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		os.Exit(1)
	}
}
