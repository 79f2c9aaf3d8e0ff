package deploy

import (
	"context"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/nginx"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// ReleaseStatus is one release as `status` shows it.
type ReleaseStatus struct {
	ID        string    `json:"id"`
	Color     string    `json:"color"`
	Image     string    `json:"image"`
	Digest    string    `json:"digest"`
	Port      int       `json:"port"`
	Container string    `json:"container"`
	State     string    `json:"state"`
	Healthy   bool      `json:"healthy"`
	Since     time.Time `json:"since"`
}

// Deploying is the deploy in flight.
type Deploying struct {
	ID    string `json:"id"`
	Image string `json:"image"`
	Step  string `json:"step"`
}

// Status is what `status --json` prints.
type Status struct {
	Active    *ReleaseStatus `json:"active"`
	Previous  *ReleaseStatus `json:"previous"`
	Deploying *Deploying     `json:"deploying"`
	// Served is the color the upstream file points at ("" for the placeholder).
	Served string `json:"served"`
}

// containerInspector is all a status report needs from the engine.
type containerInspector interface {
	InspectContainer(ctx context.Context, name string) (docker.Container, error)
}

// StatusReader reports what `deploy-agent status` shows. It only reads: state.json, the upstream
// file, the containers and their health. Fields must be set before use; a nil Probe means HTTPProbe.
type StatusReader struct {
	Cfg        *config.Config
	Containers containerInspector
	// Upstream returns the current upstream file, nil when there is none (nginx.Controller.Current).
	Upstream func() ([]byte, error)
	Store    state.Store
	Probe    func(ctx context.Context, url string, timeout time.Duration) (int, []byte, error)
}

// Status reports the truth: state.json checked against the containers and a health probe.
func (s *StatusReader) Status(ctx context.Context) (Status, error) {
	st, err := s.Store.Load()
	if err != nil {
		return Status{}, err
	}
	out := Status{}
	if cur, err := s.Upstream(); err == nil {
		out.Served = servedColor(s.Cfg, cur)
	}
	out.Active = s.releaseStatus(ctx, st.Active)
	out.Previous = s.releaseStatus(ctx, st.Previous)
	if p, err := s.Store.LoadProgress(); err == nil && p != nil {
		out.Deploying = &Deploying{ID: p.ID, Image: p.Image, Step: p.Step}
		// Before the switch the upstream file may already name the new color (staged from the
		// start step on), but nginx was not told: it still serves what it served when the deploy began.
		if !nginxTold(p.Step) && p.Color != "" && out.Served == p.Color {
			out.Served = ""
			if p.Before.Active != nil {
				out.Served = p.Before.Active.Color
			}
		}
	}
	return out, nil
}

func (s *StatusReader) releaseStatus(ctx context.Context, r *state.Release) *ReleaseStatus {
	if r == nil {
		return nil
	}
	rs := &ReleaseStatus{ID: r.ID, Color: r.Color, Image: r.Image, Digest: r.Digest, Port: r.Port, Container: r.Container, Since: r.Since, State: "missing"}
	c, err := s.Containers.InspectContainer(ctx, r.Container)
	if err == nil {
		rs.State = c.State
		if c.Running {
			probe := s.Probe
			if probe == nil {
				probe = HTTPProbe
			}
			h := s.Cfg.App.Health
			code, _, perr := probe(ctx, healthURL(s.Cfg, r), h.Timeout.D())
			rs.Healthy = perr == nil && code == 200
		}
	}
	return rs
}

// servedColor is the color the upstream file cur points at, or "" (the placeholder, or no file).
func servedColor(cfg *config.Config, cur []byte) string {
	for _, sock := range nginx.ServedSockets(cur) {
		if c := cfg.ColorOfSocket(sock); c != "" {
			return c
		}
	}
	for _, port := range nginx.ServedPorts(cur) {
		if c := cfg.ColorOfPort(port); c != "" {
			return c
		}
	}
	return ""
}
