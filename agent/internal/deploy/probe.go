package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// maxProbeBody bounds what a health answer may send back.
const maxProbeBody = 4 << 10

// HTTPProbe GETs url with timeout and returns the status code and body; it never follows redirects
// (a redirect is not health) and keeps no connections (each probe sees the current backend).
// A url of the form unix:/path/to/x.sock:/healthz GETs /healthz over that unix socket.
func HTTPProbe(ctx context.Context, url string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	if rest, ok := strings.CutPrefix(url, "unix:"); ok {
		i := strings.LastIndex(rest, ".sock:")
		if i < 0 {
			return 0, nil, fmt.Errorf("probe %q: want unix:/path.sock:/path", url)
		}
		sock := rest[:i+len(".sock")]
		url = "http://localhost" + rest[i+len(".sock:"):]
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Close = true
	c := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, body, nil
}

// healthBody is the chat server's /healthz answer.
type healthBody struct {
	Status  string `json:"status"`
	Color   string `json:"color"`
	Version string `json:"version"`
}

func parseHealth(body []byte) (healthBody, error) {
	var h healthBody
	if err := json.Unmarshal(body, &h); err != nil {
		return h, fmt.Errorf("health answer is not JSON: %.80q", body)
	}
	return h, nil
}
