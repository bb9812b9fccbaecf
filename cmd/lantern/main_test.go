package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/dockertest"
)

// lanternBin is the lantern binary built once for these tests, so that they
// run the command as a user does: exit codes, stdout and stderr included.
var lanternBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lantern-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lanternBin = filepath.Join(dir, "lantern")
	// The default data dir (~/.local/share/lantern) is the tests' own, not
	// the user's: nothing a test runs writes there.
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "xdg"))
	build := exec.Command("go", "build", "-o", lanternBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build lantern:", err)
		os.Exit(1)
	}
	code := m.Run()
	dockertest.Stop() // the dockerd of the tests of 'lantern worker --docker'
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// runIn runs a program in dir with the environment of the test process minus
// the variables these tests control, plus env.
func runIn(t *testing.T, dir string, env []string, prog string, args ...string) result {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Stdin = nil // not a terminal: nothing may wait for a person
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANTERN_") && !strings.HasPrefix(kv, "COSIGN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %q: %v", filepath.Base(prog), args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func runLantern(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	return runIn(t, dir, env, lanternBin, args...)
}

// must fails the test unless r exited 0.
func (r result) must(t *testing.T, what string) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	return r
}

// fails checks that r exited with code and said want on stderr.
func (r result) fails(t *testing.T, what string, code int, want string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", what, r.code, r.stderr, code, want)
	}
}

func putFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sha256hex(s string) string {
	return lantern.DigestOf([]byte(s)).Hex()
}

var attestTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
