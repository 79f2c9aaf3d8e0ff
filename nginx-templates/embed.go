// Package nginxtemplates embeds the nginx templates the deploy agent renders, so the binary
// works on a host where no template file was installed.
package nginxtemplates

import "embed"

// FS holds every *.tmpl file of this folder.
//
//go:embed *.tmpl
var FS embed.FS

// Upstream is the name of the upstream template in FS.
const Upstream = "upstream.conf.tmpl"
