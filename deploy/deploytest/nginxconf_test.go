package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHTTPSExampleUsesHTTP2Directive: HTTP/2 is switched on with the "http2"
// directive, not the listen flag nginx deprecated in 1.25.1.
func TestHTTPSExampleUsesHTTP2Directive(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "nginx-templates", "https.conf.example"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	if regexp.MustCompile(`(?m)^\s*listen\s[^;]*\bhttp2\b`).MatchString(conf) {
		t.Error(`https.conf.example: "listen ... http2" is deprecated; use "http2 on;"`)
	}
	if !regexp.MustCompile(`(?m)^\s*http2 on;`).MatchString(conf) {
		t.Error(`https.conf.example does not switch HTTP/2 on with "http2 on;"`)
	}
}

// TestLBListenRanges: deploy/nginx-lb-listen.sh adds one set_real_ip_from per
// range of the balancer and refuses, with a message and no output, anything
// that is not a CIDR or would trust far more than a balancer.
func TestLBListenRanges(t *testing.T) {
	script := filepath.Join("..", "..", "deploy", "nginx-lb-listen.sh")
	template := filepath.Join("..", "..", "nginx-templates", "listen-behind-lb.conf")
	tmpl, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(tmpl), "\nset_real_ip_from") {
		t.Error("the shipped listen-behind-lb.conf trusts addresses by itself; only install.sh's ranges may be trusted")
	}
	run := func(ranges string) (stdout, stderr string, err error) {
		var o, e strings.Builder
		cmd := exec.Command("sh", script, ranges, template)
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}
	good := map[string][]string{
		"10.0.0.0/16":                {"10.0.0.0/16"},
		"10.0.1.0/24, 10.0.2.0/24":   {"10.0.1.0/24", "10.0.2.0/24"},
		"172.31.0.0/16,":             {"172.31.0.0/16"},
		"10.0.0.0/16 2001:db8::/56 ": {"10.0.0.0/16", "2001:db8::/56"},
		"192.168.7.9/32":             {"192.168.7.9/32"},
	}
	for in, want := range good {
		out, stderr, err := run(in)
		if err != nil {
			t.Errorf("%q: %v %s", in, err, stderr)
			continue
		}
		if !strings.HasPrefix(out, string(tmpl)) {
			t.Errorf("%q: the output does not start with the template", in)
		}
		got := regexp.MustCompile(`(?m)^set_real_ip_from (\S+);$`).FindAllStringSubmatch(out, -1)
		var ranges []string
		for _, m := range got {
			ranges = append(ranges, m[1])
		}
		if strings.Join(ranges, " ") != strings.Join(want, " ") {
			t.Errorf("%q: trusted %v, want %v", in, ranges, want)
		}
	}
	bad := map[string]string{
		"":                      "no address range given",
		" , ":                   "no address range given",
		"0.0.0.0/0":             "must be /8 to /32",
		"10.0.0.0/7":            "must be /8 to /32",
		"10.0.0.0/33":           "must be /8 to /32",
		"::/0":                  "must be /16 to /128",
		"10.0.0.0":              "has no prefix length",
		"10.0.0.300/16":         "is not an IPv4 or IPv6 CIDR",
		"010.0.0.0/16":          "is not an IPv4 or IPv6 CIDR",
		"10.0.0/16":             "is not an IPv4 or IPv6 CIDR",
		"example.com/16":        "is not an IPv4 or IPv6 CIDR",
		"10.0.0.0/x":            "the prefix length must be a number",
		"10.0.0.0/16;":          "the prefix length must be a number",
		"10.0.0.0/16,1.2.3.4/2": "must be /8 to /32",
	}
	for in, want := range bad {
		out, stderr, err := run(in)
		if err == nil {
			t.Errorf("%q accepted:\n%s", in, out)
			continue
		}
		if out != "" || !strings.Contains(stderr, want) {
			t.Errorf("%q: stdout %q, stderr %q; want no output and an error saying %q", in, out, stderr, want)
		}
	}
}
