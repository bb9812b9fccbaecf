// Package cosigntest runs the real cosign v3 CLI in tests: Lantern's Sigstore
// bundles must be what cosign v3 verifies with --bundle, and what it writes
// must be what Lantern reads. `make cosign3` builds it from the Go module
// proxy at the version pinned in tools/cosign3 (bin/cosign3); the tests find
// it as $LANTERN_COSIGN3, else there. Where it is missing they skip on a
// developer's machine and fail under CI, which must run them — as the cosign
// v2 tests in cmd/lantern do with $LANTERN_COSIGN.
package cosigntest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Result is what a run of cosign did.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// V3 returns the cosign v3 binary: $LANTERN_COSIGN3, else bin/cosign3 at the
// top of the repository.
func V3(t testing.TB) string {
	t.Helper()
	p := os.Getenv("LANTERN_COSIGN3")
	if p == "" {
		if top, err := repoTop(); err == nil {
			p = filepath.Join(top, "bin", "cosign3")
		}
	}
	if _, err := os.Stat(p); p == "" || err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cosign v3 CLI not found at %q (%v): CI must run the interop tests; 'make test' builds it with 'make cosign3'", p, err)
		}
		t.Skipf("cosign v3 CLI not found at %q: run 'make cosign3' or 'make test'", p)
	}
	return p
}

// Run runs cosign v3 in dir, offline: HOME is dir (cosign's caches stay out
// of the user's), COSIGN_PASSWORD is password (for key files), and it fails
// the test if cosign reached for the public-good Sigstore services. It
// returns what cosign did; the caller checks the exit code.
func Run(t testing.TB, dir, password string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(V3(t), args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COSIGN_") && !strings.HasPrefix(kv, "SIGSTORE_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+dir, "COSIGN_PASSWORD="+password, "COSIGN_YES=true")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("cosign %q: %v", args, err)
	}
	for _, host := range []string{"TUF", "tuf-repo-cdn.sigstore.dev", "rekor.sigstore.dev", "fulcio.sigstore.dev", "timestamp.sigstore.dev"} {
		if strings.Contains(r.Stderr, host) {
			t.Fatalf("cosign %q reached for the network (%s):\n%s", args, host, r.Stderr)
		}
	}
	return r
}

// VerifyBundle runs `cosign verify-blob-attestation` on a bundle the way a
// user of cosign v3 does for a key-signed attestation with no transparency
// log: no deprecated flag. It fails the test if cosign warns of one.
func VerifyBundle(t testing.TB, dir, pub, predicateType, bundle, artefact string) Result {
	t.Helper()
	r := Run(t, dir, "", "verify-blob-attestation", "--bundle", bundle, "--key", pub, "--type", predicateType, "--insecure-ignore-tlog", artefact)
	if strings.Contains(r.Stderr, "deprecated") {
		t.Errorf("cosign verify-blob-attestation used a deprecated flag:\n%s", r.Stderr)
	}
	return r
}

// repoTop is the directory of Lantern's go.mod, above the working directory.
func repoTop() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/lanternfarm/lantern\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside Lantern's module")
		}
		dir = parent
	}
}
