package deploy

import (
	"errors"
	"io/fs"
	"slices"

	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/envfile"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// spec is the container of rel: hardened by the docker package, published on 127.0.0.1, with the
// env of app.env_file, then app.env, then what the agent sets itself (which neither may override).
func (r *run) spec(rel *state.Release, version, handover string) (docker.Spec, error) {
	cfg := &r.cfg
	env := map[string]string{}
	if cfg.App.EnvFile != "" {
		fileEnv, err := envfile.Read(cfg.App.EnvFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The key is optional in spirit: a host without the file deploys with app.env only.
			r.d.log().Warn("app.env_file does not exist; deploying without it", "path", cfg.App.EnvFile)
			r.event(StepStart, EventInfo, "app.env_file "+cfg.App.EnvFile+" does not exist; not used")
		case err != nil:
			return docker.Spec{}, err
		}
		for k, v := range fileEnv {
			env[k] = v
		}
	}
	for k, v := range cfg.App.Env {
		env[k] = v
	}
	env["APP_COLOR"] = rel.Color
	env["APP_VERSION"] = version
	env["CHAT_HANDOVER_DIR"] = handoverTarget
	binds := map[string]string{handover: handoverTarget}
	if dir := cfg.EffectiveSocketDir(); dir != "" {
		env["CHAT_SOCKET"] = socketsTarget + "/" + rel.Color + ".sock"
		binds[dir] = socketsTarget
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	list := make([]string, 0, len(keys))
	for _, k := range keys {
		list = append(list, k+"="+env[k])
	}
	return docker.Spec{
		Name:  rel.Container,
		Image: rel.Run,
		Labels: map[string]string{
			LabelApp: cfg.App.Name, LabelColor: rel.Color, LabelRelease: rel.ID, LabelImage: rel.Image,
		},
		Env:           list,
		HostPort:      rel.Port,
		ContainerPort: cfg.App.ContainerPort,
		MemoryBytes:   cfg.App.MemoryBytes,
		Binds:         binds,
		StopTimeout:   cfg.App.DrainTimeout.D(),
		Network:       cfg.App.Network,
	}, nil
}
