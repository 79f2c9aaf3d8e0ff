package deploy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// TestHoldFileHoldsAtTheNamedStep: while the hold file names a step, a deploy that reaches it
// stays there (journaled, nothing after it done); removing the file lets it finish.
func TestHoldFileHoldsAtTheNamedStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		hold := filepath.Join(t.TempDir(), "hold")
		if err := os.WriteFile(hold, []byte(StepSwitch+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		w.d.HoldFile = hold
		done := make(chan Outcome, 1)
		go func() {
			done <- w.d.Deploy(context.Background(), nil, Request{ID: "20261123T050000Z-dddddddd", Kind: state.KindDeploy, Image: "example.com/team/chat:v2"}, Hooks{})
		}()
		// The health gate takes a few (fake) seconds; then the deploy must stay at the switch
		// for as long as the file names it, here a minute.
		time.Sleep(time.Minute)
		select {
		case o := <-done:
			t.Fatalf("deploy ended while held: %+v", o)
		default:
		}
		if p, _ := w.d.Store.LoadProgress(); p == nil || p.Step != StepSwitch {
			t.Fatalf("held deploy: progress at step %v, want %s", p, StepSwitch)
		}
		if w.servedPort() != 8081 {
			t.Errorf("held at %s, nginx already serves %d", StepSwitch, w.servedPort())
		}
		if err := os.Remove(hold); err != nil {
			t.Fatal(err)
		}
		if o := <-done; o.Exit != 0 || w.servedPort() != 8082 {
			t.Errorf("released deploy = %+v, serving %d; want it finished on green", o, w.servedPort())
		}
	})
}
