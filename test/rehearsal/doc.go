// Package rehearsal rehearses the production path on this machine: stand-in
// EC2 hosts (containers booting systemd, each with its own Docker engine)
// are bootstrapped by deploy/install.sh from the host bundle that
// release.yml builds, and releases reach them through release.yml's own
// deploy step, the SSM documents (run by the fake aws CLI in fakeaws) and
// the systemd units, under HTTP load and chat clients on every host.
//
// The tests carry the integration build tag; `go test -tags integration
// ./test/rehearsal/` is the short form (two hosts) and -rehearsal.long the
// long form behind BENCHMARKS.md (three hosts, more rollouts and load).
package rehearsal
