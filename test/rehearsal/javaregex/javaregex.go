// Package javaregex matches regular expressions with Java's engine, the one
// AWS Systems Manager uses for a document parameter's allowedPattern. Go's
// regexp differs where it matters for an injection guard: in Java, `$`
// also matches before a final line terminator ("\n", "\r\n", "\u0085",
// "\u2028", "\u2029"), so `^ref$` admits "ref\n". The only faithful check is
// the JDK itself, so Match runs a tiny Java program (Matcher.java, embedded)
// with the `java` launcher and fails loudly when no JDK is installed.
package javaregex

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed Matcher.java
var matcherSource []byte

// ErrNoJava means no `java` launcher is on PATH; install a JDK (11 or newer,
// e.g. Debian's default-jdk-headless).
var ErrNoJava = errors.New("java not found on PATH: install a JDK (apt-get install default-jdk-headless); SSM allowedPattern checks need Java's regex engine")

// Case is one pattern tested against one value.
type Case struct {
	Pattern string
	Value   string
}

// PatternError reports a pattern Java refuses to compile.
type PatternError struct {
	Pattern string
	Reason  string
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("allowedPattern %q does not compile in Java: %s", e.Pattern, e.Reason)
}

// Match reports, for each case, whether Java's Pattern.compile(p).matcher(v).find()
// succeeds: the same search SSM runs, so an unanchored pattern matches a part
// of the value. One JVM answers all cases. A pattern that does not compile
// is a *PatternError.
func Match(ctx context.Context, cases []Case) ([]bool, error) {
	if len(cases) == 0 {
		return nil, nil
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, ErrNoJava
	}
	program, cleanup, err := matcherProgram(ctx)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var in bytes.Buffer
	enc := base64.StdEncoding
	for _, c := range cases {
		fmt.Fprintf(&in, "%s %s\n", enc.EncodeToString([]byte(c.Pattern)), enc.EncodeToString([]byte(c.Value)))
	}
	var out, stderr bytes.Buffer
	// A small heap and the C1 compiler only keep the JVM's start short.
	cmd := exec.CommandContext(ctx, java, append([]string{"-Xmx64m", "-XX:TieredStopAtLevel=1"}, program...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &in, &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("java regex matcher: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	got := make([]bool, 0, len(cases))
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line := sc.Text()
		i := len(got)
		if i >= len(cases) {
			return nil, fmt.Errorf("java regex matcher: more answers than cases (%q)", line)
		}
		switch {
		case line == "match":
			got = append(got, true)
		case line == "nomatch":
			got = append(got, false)
		case strings.HasPrefix(line, "error "):
			return nil, &PatternError{Pattern: cases[i].Pattern, Reason: strings.TrimPrefix(line, "error ")}
		default:
			return nil, fmt.Errorf("java regex matcher: unexpected answer %q", line)
		}
	}
	if len(got) != len(cases) {
		return nil, fmt.Errorf("java regex matcher: %d answers for %d cases: %s", len(got), len(cases), strings.TrimSpace(stderr.String()))
	}
	return got, nil
}

// matcherProgram returns the java arguments that run Matcher: the class
// compiled once with javac into the user's cache (a JVM start of about
// 0.1 s), or, without javac, the source file for the single-file source
// launcher (about 0.8 s, it compiles in memory each time).
func matcherProgram(ctx context.Context) ([]string, func(), error) {
	sum := sha256.Sum256(matcherSource)
	if cache, err := os.UserCacheDir(); err == nil {
		dir := filepath.Join(cache, "mywebchat-javaregex", hex.EncodeToString(sum[:8]))
		if _, err := os.Stat(filepath.Join(dir, "Matcher.class")); err == nil {
			return []string{"-cp", dir, "Matcher"}, func() {}, nil
		}
		if javac, err := exec.LookPath("javac"); err == nil {
			if err := compileMatcher(ctx, javac, dir); err == nil {
				return []string{"-cp", dir, "Matcher"}, func() {}, nil
			}
		}
	}
	tmp, err := os.MkdirTemp("", "javaregex-")
	if err != nil {
		return nil, nil, fmt.Errorf("java regex: %w", err)
	}
	src := filepath.Join(tmp, "Matcher.java")
	if err := os.WriteFile(src, matcherSource, 0o600); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, fmt.Errorf("java regex: %w", err)
	}
	return []string{src}, func() { os.RemoveAll(tmp) }, nil
}

// compileMatcher compiles Matcher.java into dir, atomically: a build folder
// renamed into place, so concurrent callers never see half a class.
func compileMatcher(ctx context.Context, javac, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	build, err := os.MkdirTemp(filepath.Dir(dir), ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(build)
	src := filepath.Join(build, "Matcher.java")
	if err := os.WriteFile(src, matcherSource, 0o644); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, javac, "-d", build, src).CombinedOutput(); err != nil {
		return fmt.Errorf("javac: %w: %s", err, out)
	}
	if err := os.Rename(build, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "Matcher.class")); statErr == nil {
			return nil // another caller won the race
		}
		return err
	}
	return nil
}
