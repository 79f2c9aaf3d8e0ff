// Package fleet holds the tests that go beyond one host: several chat server
// processes sharing rooms through Redis behind one nginx, and a simulated
// three-host fleet of deploy agents rolled out one host at a time by
// rollout.sh, the local mirror of the SSM document's rate control.
package fleet
