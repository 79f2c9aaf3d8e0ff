// Package deploytest holds the tests of the delivery files that are not Go:
// the SSM Command document's image pattern and the workflows' security
// policy (unit tests), and the two images with the nginx site config, built
// and run on a real Docker engine (integration tests). It has no code of its
// own.
package deploytest
