// Package diffoscope runs Debian's diffoscope (https://diffoscope.org) on
// two artefacts and returns its plain-text report: what a maintainer reads
// to learn why two builders got different bytes from one source.
//
// diffoscope is a separate program (apt-get install diffoscope-minimal),
// run with os/exec, in a directory of its own, on copies of the two
// artefacts named a/NAME and b/NAME, so that a report depends on the bytes
// and the name only, never on where they were kept.
package diffoscope

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lanternfarm/lantern/internal/capped"
)

// ErrNotInstalled reports that no diffoscope program was found.
var ErrNotInstalled = errors.New("diffoscope is not installed")

// Install says how to install diffoscope.
const Install = "as root: apt-get install --no-install-recommends diffoscope-minimal"

// Defaults of a Differ.
const (
	DefaultTimeout   = 10 * time.Minute
	DefaultMaxReport = 4 << 20
)

// Differ runs diffoscope.
type Differ struct {
	// Path is the diffoscope program.
	Path string
	// Timeout bounds one comparison (default DefaultTimeout).
	Timeout time.Duration
	// MaxReport bounds a report's size in bytes (default DefaultMaxReport):
	// a longer one is cut, with a last line saying so.
	MaxReport int64
}

// Find returns a Differ running the diffoscope at path, or the one on the
// PATH when path is "".
func Find(path string) (*Differ, error) {
	name := path
	if name == "" {
		name = "diffoscope"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w (looked for %q: %v); %s", ErrNotInstalled, name, err, Install)
	}
	return &Differ{Path: p}, nil
}

// Diff compares a and b, two versions of an artefact called name, and
// returns diffoscope's report. Two equal inputs give an empty report.
func (d *Differ) Diff(ctx context.Context, name string, a, b io.Reader) ([]byte, error) {
	timeout, maxReport := d.Timeout, d.MaxReport
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if maxReport <= 0 {
		maxReport = DefaultMaxReport
	}
	dir, err := os.MkdirTemp("", "lantern-diffoscope-")
	if err != nil {
		return nil, fmt.Errorf("diffoscope: %w", err)
	}
	defer os.RemoveAll(dir)
	name = fileName(name)
	for _, f := range []struct {
		side string
		r    io.Reader
	}{{"a", a}, {"b", b}} {
		if err := writeFile(filepath.Join(dir, f.side, name), f.r); err != nil {
			return nil, fmt.Errorf("diffoscope: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.Path,
		"--text", "-", "--text-color", "never", "--no-progress",
		// diffoscope's own best effort; the context kills it a little later.
		"--timeout", strconv.Itoa(max(1, int(timeout.Seconds()*0.9))),
		"a/"+name, "b/"+name)
	cmd.Dir = dir
	report, stderr := &capped.Buffer{Max: maxReport}, &capped.Buffer{Max: 64 << 10}
	cmd.Stdout, cmd.Stderr = report, stderr
	// Its temporary files go into dir, which goes with it.
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "LC_ALL=C.UTF-8", "TZ=UTC")
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("diffoscope %s: gave up after %s: %w", name, timeout, ctx.Err())
	}
	// Exit 0: no difference; 1: a report of the differences; others: it failed.
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.ExitCode() == 1 {
		return report.Bytes("report"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("diffoscope %s: %w: %s", name, err, lastLine(string(stderr.Kept())))
	}
	return report.Bytes("report"), nil
}

// fileName makes name safe as one file name: an artefact's label may hold
// anything its claim's signer put there.
func fileName(name string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '+':
			return r
		}
		return '_'
	}, name)
	if clean == "" || strings.Trim(clean, ".") == "" {
		clean = "artefact"
	}
	if len(clean) > 128 {
		clean = clean[:128]
	}
	return clean
}

func writeFile(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return "(it printed nothing on stderr)"
	}
	return s
}
