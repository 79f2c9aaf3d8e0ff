package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxProbeBody bounds what a health answer may send back.
const maxProbeBody = 4 << 10

// HTTPProbe GETs url with timeout and returns the status code and body; it never follows redirects
// (a redirect is not health) and keeps no connections (each probe sees the current backend).
func HTTPProbe(ctx context.Context, url string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Close = true
	c := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
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
