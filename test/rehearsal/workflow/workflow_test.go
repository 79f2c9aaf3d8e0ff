package workflow

import "testing"

func TestEval(t *testing.T) {
	c := Context{
		"vars":   map[string]any{"SET": "x", "EMPTY": ""},
		"steps":  map[string]any{"refs": map[string]any{"outputs": map[string]any{"app": "ghcr.io/a/b@sha256:1"}}},
		"github": map[string]any{"event_name": "push"},
	}
	tests := []struct{ expr, want string }{
		{"${{ vars.SET || 'd' }}", "x"},
		{"${{ vars.EMPTY || 'd' }}", "d"},
		{"${{ vars.UNSET || 'd' }}", "d"},
		{"${{ steps.refs.outputs.app }}", "ghcr.io/a/b@sha256:1"},
		{"${{ fromJSON(vars.UNSET || '60') }}", "60"},
		{"${{ github.event_name == 'push' && 'yes' || 'no' }}", "yes"},
		{"${{ !(github.event_name != 'push') }}", "true"},
		{"a-${{ 'it''s' }}-b", "a-it's-b"},
	}
	for _, tt := range tests {
		got, err := c.Expand(tt.expr)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.expr, got, err, tt.want)
		}
	}
	for _, bad := range []string{"${{ secrets.X }}", "${{ toJSON(vars) }}", "${{ vars.SET ||| 'x' }}"} {
		if _, err := c.Expand(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
