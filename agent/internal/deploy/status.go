package deploy

import (
	"context"
	"strconv"
	"time"

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

// Status reports the truth: state.json checked against the containers and a health probe.
func (d *Deployer) Status(ctx context.Context) (Status, error) {
	st, err := d.Store.Load()
	if err != nil {
		return Status{}, err
	}
	out := Status{Served: d.servedColor()}
	out.Active = d.releaseStatus(ctx, st.Active)
	out.Previous = d.releaseStatus(ctx, st.Previous)
	if p, err := d.Store.LoadProgress(); err == nil && p != nil {
		out.Deploying = &Deploying{ID: p.ID, Image: p.Image, Step: p.Step}
	}
	return out, nil
}

func (d *Deployer) releaseStatus(ctx context.Context, r *state.Release) *ReleaseStatus {
	if r == nil {
		return nil
	}
	rs := &ReleaseStatus{ID: r.ID, Color: r.Color, Image: r.Image, Digest: r.Digest, Port: r.Port, Container: r.Container, Since: r.Since, State: "missing"}
	c, err := d.Engine.InspectContainer(ctx, r.Container)
	if err == nil {
		rs.State = c.State
		if c.Running {
			code, _, perr := d.probe(ctx, "http://127.0.0.1:"+strconv.Itoa(r.Port)+d.Cfg.App.Health.Path, d.Cfg.App.Health.Timeout.D())
			rs.Healthy = perr == nil && code == 200
		}
	}
	return rs
}
