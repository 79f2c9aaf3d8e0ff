// Package deploytest holds the tests of the delivery files that are not Go:
// the SSM Command document's image pattern, the workflows' security policy,
// the GHCR credential helper and the fleet's drain script (unit tests), and the two images with the nginx site config, built
// and run on a real Docker engine (integration tests). It has no code of its
// own.
package deploytest
