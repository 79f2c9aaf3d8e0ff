// Command zdt runs the zero-downtime comparison by hand (the long form of
// the end-to-end harness): the deploy agent, a stop-and-run deploy, a
// shell-script blue/green and, given a kamal-proxy binary, Kamal's way, each
// under the same HTTP and WebSocket load, and prints the Markdown tables
// BENCHMARKS.md carries.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/zdt"
)

func main() {
	var l zdt.Load
	flag.IntVar(&l.Rate, "rate", 1000, "HTTP requests per second")
	flag.IntVar(&l.Clients, "clients", 200, "WebSocket clients")
	flag.IntVar(&l.Movers, "movers", 0, "how many of the WebSocket clients offer caps:[\"move\"] (protocol v1.1); the others are v1 clients")
	flag.IntVar(&l.Rooms, "rooms", 8, "rooms")
	flag.DurationVar(&l.Send, "send", 3*time.Second, "each client's pace between messages")
	flag.IntVar(&l.Deploys, "deploys", 20, "consecutive deploys per deployer")
	flag.DurationVar(&l.Warmup, "warmup", 5*time.Second, "steady state before the first deploy")
	flag.DurationVar(&l.Gap, "gap", 3*time.Second, "steady state between deploys")
	flag.DurationVar(&l.Tail, "tail", 2*time.Second, "a deploy window extends this long past the deploy")
	flag.IntVar(&l.HealthyAfter, "healthy-after", 2, "the agent's app.health.healthy_after: consecutive 200s before the switch (2 as shipped; 1 is kamal-proxy's single passing check)")
	which := flag.String("scenarios", "agent,fleet,stop-and-run,bluegreen", "comma list of agent, stop-and-run, bluegreen, fleet (two hosts in Redis mode behind a load balancer), kamal (kamal-proxy in front of two colors; needs -kamal-proxy)")
	var kamal zdt.KamalOptions
	flag.StringVar(&kamal.Bin, "kamal-proxy", "", "path of a kamal-proxy binary built from its source, for the kamal scenario (BENCHMARKS.md says how to build it)")
	flag.DurationVar(&kamal.HealthInterval, "kamal-health-interval", time.Second, "kamal-proxy's --health-check-interval in the kamal scenario (1s is Kamal's default)")
	faults := flag.String("faults", "all", "fault scenarios after the comparison: all, short or none")
	engine := flag.String("engine-restart", "", `shell command that restarts the Docker engine (e.g. "systemctl restart docker"); the fault is skipped without it`)
	only := flag.String("only", "", "comma list: run only the faults whose name contains one of these")
	var fl zdt.Load
	flag.IntVar(&fl.Rate, "fault-rate", 200, "HTTP requests per second during the fault scenarios")
	flag.IntVar(&fl.Clients, "fault-clients", 20, "WebSocket clients during the fault scenarios")
	flag.Parse()
	fl.Rooms, fl.Send, fl.Tail = 2, l.Send, l.Tail
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	err := zdt.Compare(ctx, l, strings.Split(*which, ","), *faults, strings.Split(*only, ","), fl, *engine, kamal, os.Stdout, log)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "zdt:", err)
		os.Exit(1)
	}
}
