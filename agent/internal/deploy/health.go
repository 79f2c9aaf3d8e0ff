package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

const (
	// firstAnswerPoll spaces the health gate's checks until the first 200, for
	// firstAnswerWindow after the start.
	firstAnswerPoll   = 20 * time.Millisecond
	firstAnswerWindow = time.Second
	// verifyPoll spaces the checks through nginx after the switch: each is one small request to
	// nginx on the same host, and the new workers answer within milliseconds of the reload.
	verifyPoll = 5 * time.Millisecond
	// reloadHandover is how long after the new color's first answer through nginx the old
	// configuration may still take connections. On a reload nginx's master starts the new
	// workers, sleeps 100 ms "to allow new processes to start", and only then tells the old
	// workers to stop accepting: in between, old and new workers take new connections from the
	// same listening socket. The new color's first answer comes from a new worker, so it cannot
	// come before they started; the 50 ms beyond nginx's 100 cover a busy host where the
	// master's sleep runs late (old answers were seen up to 70 ms after the first new one).
	reloadHandover = 150 * time.Millisecond
)

// logReader quotes a failed container's last log lines.
type logReader interface {
	Logs(ctx context.Context, id string, lines int) (string, error)
}

// healthGate waits for healthy_after consecutive 200s from rel's container (on its socket, or
// 127.0.0.1:port) within start_timeout. A container that exits fails at once. The error quotes
// the container's log tail.
func (d *Deployer) healthGate(ctx context.Context, abort <-chan struct{}, cfg *config.Config, id string, rel *state.Release) error {
	h := cfg.App.Health
	url := healthURL(cfg, rel)
	started := time.Now()
	deadline := started.Add(h.StartTimeout.D())
	streak, last := 0, "no answer yet"
	for {
		c, err := d.Engine.InspectContainer(ctx, id)
		if err != nil {
			return d.withLogs(ctx, id, fmt.Errorf("health gate: %w", err))
		}
		// A container that exited (restarting means it exited and the restart policy brings it
		// back) will not pass: fail now rather than at start_timeout.
		if c.State == "restarting" || (!c.Running && c.State != "created") {
			return d.withLogs(ctx, id, fmt.Errorf("health gate: the container %s (exit code %d)", exitedState(c.State), c.ExitCode))
		}
		code, body, err := d.probe(ctx, url, h.Timeout.D())
		switch {
		case err != nil:
			streak, last = 0, err.Error()
		case code != 200:
			streak, last = 0, fmt.Sprintf("HTTP %d %.100s", code, strings.TrimSpace(string(body)))
		default:
			streak++
			if streak >= h.HealthyAfter {
				return nil
			}
		}
		wait := h.Interval.D()
		// A container that just started listens within milliseconds: until its first 200, in
		// the first second, ask again soon rather than an interval later, which is deploy time
		// nobody gains from. The checks that count toward healthy_after stay an interval apart.
		if streak == 0 && time.Since(started) < firstAnswerWindow {
			wait = min(wait, firstAnswerPoll)
		}
		if time.Now().Add(wait).After(deadline) {
			return d.withLogs(ctx, id, fmt.Errorf("health gate: not healthy within %s (%d of %d checks passed in a row; last: %s)", h.StartTimeout.D(), streak, h.HealthyAfter, last))
		}
		select {
		case <-abort:
			return ErrAborted
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (d *Deployer) withLogs(ctx context.Context, id string, err error) error {
	logs, lerr := d.Engine.Logs(context.WithoutCancel(ctx), id, logTailLines)
	if lerr != nil {
		return fmt.Errorf("%w (container logs unavailable: %w)", err, lerr)
	}
	logs = strings.TrimSpace(logs)
	if logs == "" {
		return fmt.Errorf("%w (the container logged nothing)", err)
	}
	return fmt.Errorf("%w; last log lines:\n%s", err, logs)
}

// ErrVerify means nginx did not answer from the new color after the switch.
var ErrVerify = errors.New("verify through nginx failed")

// verify waits up to cfg.App.Verify for healthy_after answers through check_url that report
// color. It returns when color first answered, from which waitHandover counts.
//
// A reload is asynchronous: until nginx's old workers stop taking connections (reloadHandover
// after the new color's first answer), a probe may land on one of them and be answered by the
// old color. Such an answer is expected and does not break the run of answers from the new color;
// after that window it does, as do an error and any status but 200 at any time.
func (d *Deployer) verify(ctx context.Context, cfg *config.Config, color string) (time.Time, error) {
	h := cfg.App.Health
	deadline := time.Now().Add(cfg.App.Verify.D())
	streak, last := 0, "no answer yet"
	var first time.Time
	for {
		code, body, err := d.probe(ctx, cfg.Proxy.CheckURL, h.Timeout.D())
		switch {
		case err != nil:
			streak, last = 0, err.Error()
		case code != 200:
			streak, last = 0, fmt.Sprintf("HTTP %d", code)
		default:
			hb, perr := parseHealth(body)
			switch {
			case perr != nil:
				streak, last = 0, perr.Error()
			case hb.Color != color:
				last = fmt.Sprintf("answered by color %q", hb.Color)
				if !first.IsZero() && time.Since(first) >= reloadHandover {
					streak = 0
				}
			default:
				if first.IsZero() {
					first = time.Now()
				}
				streak++
				if streak >= h.HealthyAfter {
					return first, nil
				}
			}
		}
		// Probes through nginx are spaced more tightly than the health gate: the switch is live,
		// the new color already passed its gate, and what is left to see is nginx's new workers
		// answering (each probe is a new connection), so waiting longer between probes only adds
		// to the deploy.
		wait := min(h.Interval.D(), verifyPoll)
		if time.Now().Add(wait).After(deadline) {
			return time.Time{}, fmt.Errorf("%w: %s did not report color %s %d times within %s (last: %s)", ErrVerify, cfg.Proxy.CheckURL, color, h.HealthyAfter, cfg.App.Verify.D(), last)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// waitHandover waits until reloadHandover has passed since first, the new configuration's first
// answer through nginx, so that no new connection can still reach the configuration before it:
// not while the old color drains, nor once the deploy has reported its result.
func waitHandover(ctx context.Context, first time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(first.Add(reloadHandover))):
	}
}

// verifySettled is verify followed by waitHandover, for the paths with nothing to do meanwhile.
func (d *Deployer) verifySettled(ctx context.Context, cfg *config.Config, color string) error {
	first, err := d.verify(ctx, cfg, color)
	if err != nil {
		return err
	}
	waitHandover(ctx, first)
	return nil
}

// probeHealthy reports whether rel's container answers 200 on the health path, trying a few
// times so one slow answer does not count as dead.
func (d *Deployer) probeHealthy(ctx context.Context, cfg *config.Config, rel *state.Release) bool {
	h := cfg.App.Health
	url := healthURL(cfg, rel)
	for i := range 3 {
		if code, _, err := d.probe(ctx, url, h.Timeout.D()); err == nil && code == 200 {
			return true
		}
		if i < 2 {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(h.Interval.D()):
			}
		}
	}
	return false
}

func exitedState(state string) string {
	if state == "restarting" {
		return "exited and is restarting"
	}
	return "is " + state
}
