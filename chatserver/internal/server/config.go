package server

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
)

// ErrConfig marks a malformed environment value.
var ErrConfig = errors.New("bad configuration")

// Config is the chat server's configuration, read from the environment
// (docs/config.md, "The chat server's environment").
type Config struct {
	Addr           string        // CHAT_ADDR, default :8080
	AllowedOrigins []string      // CHAT_ALLOWED_ORIGINS, comma list; empty = same host
	RedisURL       string        // CHAT_REDIS_URL; empty = in-process rooms
	History        int           // CHAT_HISTORY, default 200
	StaticDir      string        // CHAT_STATIC_DIR; empty = no page served
	DrainTimeout   time.Duration // CHAT_DRAIN_TIMEOUT, default 10s
	HandoverDir    string        // CHAT_HANDOVER_DIR; empty = no handover
	// SocketPath is CHAT_SOCKET: a unix socket to serve on as well as Addr,
	// the data path from nginx (the deploy agent sets it); empty = TCP only.
	SocketPath string
	Color      string // APP_COLOR
	Version    string // APP_VERSION
}

// FromEnv reads and validates the configuration; getenv is os.Getenv in main.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Addr:         ":8080",
		History:      chat.DefaultHistory,
		DrainTimeout: 10 * time.Second,
		RedisURL:     getenv("CHAT_REDIS_URL"),
		StaticDir:    getenv("CHAT_STATIC_DIR"),
		HandoverDir:  getenv("CHAT_HANDOVER_DIR"),
		SocketPath:   getenv("CHAT_SOCKET"),
		Color:        getenv("APP_COLOR"),
		Version:      getenv("APP_VERSION"),
	}
	if v := getenv("CHAT_ADDR"); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return c, fmt.Errorf("%w: CHAT_ADDR %q: %w", ErrConfig, v, err)
		}
		c.Addr = v
	}
	if p := c.SocketPath; p != "" {
		// sun_path holds 108 bytes with the terminating NUL.
		if !filepath.IsAbs(p) || len(p) > maxSocketPath || filepath.Clean(p) != p {
			return c, fmt.Errorf("%w: CHAT_SOCKET %q: want a clean absolute path of at most %d bytes", ErrConfig, p, maxSocketPath)
		}
	}
	if v := getenv("CHAT_ALLOWED_ORIGINS"); v != "" {
		for o := range strings.SplitSeq(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
	}
	if v := getenv("CHAT_HISTORY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < chat.ResetReplay || n > 10000 {
			return c, fmt.Errorf("%w: CHAT_HISTORY %q: want a number in %d..10000", ErrConfig, v, chat.ResetReplay)
		}
		c.History = n
	}
	if v := getenv("CHAT_DRAIN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("%w: CHAT_DRAIN_TIMEOUT %q: want a positive duration", ErrConfig, v)
		}
		c.DrainTimeout = d
	}
	return c, nil
}

// maxSocketPath is the longest unix socket path the kernel accepts.
const maxSocketPath = 107

// HealthURL is the /healthz URL on the loopback for the -healthcheck flag.
func (c Config) HealthURL() string {
	_, port, err := net.SplitHostPort(c.Addr)
	if err != nil || port == "" {
		port = "8080"
	}
	return "http://127.0.0.1:" + port + "/healthz"
}
