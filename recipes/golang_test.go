package recipes_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/buildkittest"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker/solve"
)

// These tests download from GOPROXY and check against the checksum
// database (go mod download), as the recipe does; -short skips them. The
// toolchain module (~80 MB) and the modules land in a module cache that
// runs share, under the system's temporary directory; they work from an
// empty one too.

var stringer = recipes.GoSpec{
	Module:    "golang.org/x/tools",
	Version:   "v0.30.0",
	Package:   "golang.org/x/tools/cmd/stringer",
	GoVersion: "1.24.4",
	GOOS:      "linux",
	GOARCH:    "amd64",
}

// cacheDir returns the directory the tests of this package share across
// runs: Go module caches, which the go command locks as it writes.
func cacheDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "lantern-recipes-test-cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadGo(t *testing.T) *recipes.Recipe {
	t.Helper()
	r, err := recipes.Load("go")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func needNetwork(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: this test downloads from GOPROXY")
	}
}

func prepare(t *testing.T, r *recipes.Recipe, spec recipes.GoSpec) (*recipes.GoInputs, error) {
	t.Helper()
	start := time.Now()
	in, err := recipes.PrepareGo(t.Context(), r, spec, t.TempDir(), recipes.PrepareOptions{
		ModCache: filepath.Join(cacheDir(t), "modcache"),
	})
	t.Logf("PrepareGo(%s@%s) took %v", spec.Package, spec.Version, time.Since(start).Round(time.Millisecond))
	return in, err
}

// TestStringerReproduces rebuilds stringer in two BuildKit daemons, as two
// builders with their own keys would, and compares both with what a plain
// go install on this machine, outside the farm, makes of it.
func TestStringerReproduces(t *testing.T) {
	needNetwork(t)
	if runtime.GOOS != "linux" {
		t.Skip("the go recipe's sandbox runs on Linux")
	}
	r := loadGo(t)
	in, err := prepare(t, r, stringer)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("source %s: %s %s", in.Source, in.Source.Digest, in.Source.GoSum)
	for _, d := range in.Dependencies() {
		t.Logf("dependency %s: %s", d.Name, d.Digest)
	}
	bin, err := in.BinaryPath(r)
	if err != nil {
		t.Fatal(err)
	}
	env, err := in.Environment(r)
	if err != nil {
		t.Fatal(err)
	}

	var outputs []lantern.Digest
	for i := range 2 {
		// A daemon of its own, so that the second build is a rebuild and
		// not a cache hit; and a key of its own.
		d, c := buildkittest.Start(t)
		key, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		build := in
		if i == 1 {
			// The second builder works as a worker does: the toolchain is
			// sent to BuildKit as soon as it is fetched, while it is
			// checked; PrepareGo takes the checked one. The build is the
			// same, and sends only what changed of the toolchain.
			var sent *recipes.GoToolchain
			tc, err := recipes.PrepareGoToolchain(t.Context(), r, recipes.GoSpec{Version: stringer.Version, Package: stringer.Package}, t.TempDir(),
				recipes.PrepareOptions{ModCache: filepath.Join(cacheDir(t), "modcache"), Fetched: func(tc recipes.GoToolchain) { sent = &tc }})
			if err != nil {
				t.Fatal(err)
			}
			if sent == nil || tc.Tree != in.Toolchain.Tree || tc.Dir != in.Toolchain.Dir {
				t.Fatalf("PrepareGoToolchain = %s in %s (fetched: %v), PrepareGo's toolchain %s in %s: want the same", tc.Tree, tc.Dir, sent != nil, in.Toolchain.Tree, in.Toolchain.Dir)
			}
			send, err := recipes.ToolchainSend(t.Context(), *sent)
			if err != nil {
				t.Fatal(err)
			}
			if err := solve.Send(t.Context(), c, send); err != nil {
				t.Fatal(err)
			}
			if build, err = recipes.PrepareGo(t.Context(), r, stringer, t.TempDir(), recipes.PrepareOptions{
				ModCache: filepath.Join(cacheDir(t), "modcache"), Toolchain: &tc,
			}); err != nil {
				t.Fatal(err)
			}
		}
		out := t.TempDir()
		var log bytes.Buffer
		started := time.Now()
		b, err := recipes.GoBuild(t.Context(), build, r)
		if err != nil {
			t.Fatalf("builder %d: GoBuild() = %v", i+1, err)
		}
		if err := solve.Run(t.Context(), c, b, out, &log); err != nil {
			t.Fatalf("builder %d: solve.Run() = %v\nits log:\n%s", i+1, err, &log)
		}
		finished := time.Now()
		t.Logf("builder %d built in %v; its log:\n%s", i+1, finished.Sub(started).Round(time.Millisecond), &log)
		if strings.Contains(log.String(), "CACHED") {
			t.Errorf("builder %d: a step came from the cache, want a rebuild:\n%s", i+1, &log)
		}
		if m := regexp.MustCompile(`transferring toolchain: ([0-9.]+) MB`).FindStringSubmatch(log.String()); i == 1 && m != nil {
			if mb, _ := strconv.ParseFloat(m[1], 64); mb > 50 {
				t.Errorf("builder 2 was sent the toolchain ahead, and its build sent %s MB of it again, want only what changed", m[1])
			}
		}
		if !strings.Contains(log.String(), "install golang.org/x/tools/cmd/stringer@v0.30.0") {
			t.Errorf("builder %d: the log does not show the build step:\n%s", i+1, &log)
		}
		output, _, err := lantern.DigestFile(filepath.Join(out, filepath.FromSlash(bin)))
		if err != nil {
			t.Fatal(err)
		}

		// What the builder signs, and what anyone reads back.
		envelope, err := attest.Sign(&lantern.Rebuild{
			Source: in.Source, Label: bin, Output: output, Recipe: r.Ref(), Builder: key.ID(),
			Dependencies: in.Dependencies(), Environment: env, Started: started, Finished: finished,
		}, key)
		if err != nil {
			t.Fatal(err)
		}
		v, err := attest.Verify(envelope, key.Public())
		if err != nil {
			t.Fatal(err)
		}
		rb := v.Claim.(*lantern.Rebuild)
		t.Logf("builder %d (%s): %s = %s", i+1, v.Signer.Short(), rb.Label, rb.Output)
		outputs = append(outputs, rb.Output)

		if err := c.Close(); err != nil {
			t.Logf("close client: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("close buildkitd: %v", err)
		}
	}

	host := hostInstall(t, stringer)
	t.Logf("sha256 of stringer: builder 1 %s, builder 2 %s, host %s", outputs[0].Hex(), outputs[1].Hex(), host.Hex())
	if outputs[0] != outputs[1] {
		t.Errorf("the two builders disagree: %s and %s", outputs[0], outputs[1])
	}
	if outputs[0] != host {
		t.Errorf("the farm's stringer is %s, a plain go install's %s", outputs[0], host)
	}
}

// hostInstall runs what the recipe says anyone can run to check a result,
// on this machine, with a module cache of its own, and returns the digest
// of the command it installed:
//
//	GOTOOLCHAIN=go<version> GOFLAGS=-trimpath CGO_ENABLED=0 go install PKG@VERSION
//
// The go command on the PATH downloads the toolchain (GOTOOLCHAIN) and the
// modules, and checks them against the checksum database.
func hostInstall(t *testing.T, spec recipes.GoSpec) lantern.Digest {
	t.Helper()
	gopath := t.TempDir()
	bin := filepath.Join(t.TempDir(), "bin")
	cmd := exec.CommandContext(t.Context(), "go", "install", spec.Package+"@"+spec.Version)
	cmd.Dir = t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "GO") && k != "CGO_ENABLED" {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"GOTOOLCHAIN=go"+spec.GoVersion, "GOFLAGS=-trimpath", "CGO_ENABLED=0",
		"GOOS="+spec.GOOS, "GOARCH="+spec.GOARCH,
		"GOBIN="+bin, "GOPATH="+gopath,
		"GOMODCACHE="+filepath.Join(cacheDir(t), "host-modcache"),
		"GOCACHE="+t.TempDir(),
	)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Logf("go install on the host took %v", time.Since(start).Round(time.Millisecond))
	d, _, err := lantern.DigestFile(filepath.Join(bin, "stringer"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestInputsAreChecked: a source that is not the claimed one is refused,
// and an input changed after PrepareGo is found before any build.
func TestInputsAreChecked(t *testing.T) {
	needNetwork(t)
	r := loadGo(t)

	t.Run("claimed source digest", func(t *testing.T) {
		spec := stringer
		spec.SourceDigest = lantern.DigestOf([]byte("not the module zip"))
		_, err := prepare(t, r, spec)
		de := wantMismatch(t, err)
		if de.Expected != spec.SourceDigest || de.Actual.IsZero() {
			t.Errorf("PrepareGo() = %v, want the claimed digest %s and the zip's", err, spec.SourceDigest)
		}
	})
	t.Run("claimed source h1", func(t *testing.T) {
		spec := stringer
		spec.SourceGoSum = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
		_, err := prepare(t, r, spec)
		de := wantMismatch(t, err)
		if de.ExpectedSum != spec.SourceGoSum || !strings.HasPrefix(de.ActualSum, "h1:") {
			t.Errorf("PrepareGo() = %v, want the claimed h1: hash and the checksum database's", err)
		}
	})

	in, err := prepare(t, r, stringer)
	if err != nil {
		t.Fatal(err)
	}
	if err := recipes.VerifyGo(in); err != nil {
		t.Fatalf("VerifyGo() of what PrepareGo made = %v, want nil", err)
	}
	zipFile := filepath.Join(in.ProxyDir, "golang.org", "x", "tools", "@v", "v0.30.0.zip")
	modFile := filepath.Join(in.ProxyDir, "golang.org", "x", "sync", "@v", "v0.11.0.mod")
	listFile := filepath.Join(in.ProxyDir, "golang.org", "x", "tools", "@v", "list")
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T) (in *recipes.GoInputs)
	}{
		{"a byte of the source zip", func(t *testing.T) *recipes.GoInputs {
			flipByte(t, zipFile, 1000)
			return in
		}},
		{"a dependency's go.mod", func(t *testing.T) *recipes.GoInputs {
			appendTo(t, modFile, "require example.com/evil v1.0.0\n")
			return in
		}},
		{"a newer version listed", func(t *testing.T) *recipes.GoInputs {
			appendTo(t, listFile, "v0.31.0\n")
			return in
		}},
		{"a file added", func(t *testing.T) *recipes.GoInputs {
			name := filepath.Join(in.ProxyDir, "golang.org", "x", "tools", "@v", "v0.29.0.mod")
			if err := os.WriteFile(name, []byte("module golang.org/x/tools\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(name) })
			return in
		}},
		{"a file of the toolchain", func(t *testing.T) *recipes.GoInputs {
			// A copy: the toolchain in the shared module cache stays whole.
			copied := *in
			copied.Toolchain.Dir = filepath.Join(t.TempDir(), "go")
			linkTree(t, in.Toolchain.Dir, copied.Toolchain.Dir)
			name := filepath.Join(copied.Toolchain.Dir, "src", "fmt", "print.go")
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			// A new file, not a write to the one linked to the cache's.
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, append(b, "\nfunc init() { panic(1) }\n"...), 0o444); err != nil {
				t.Fatal(err)
			}
			return &copied
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tampered := tc.tamper(t)
			err := recipes.VerifyGo(tampered)
			wantMismatch(t, err)
			t.Logf("VerifyGo() = %v", err)
			// GoBuild checks first: a tampered input makes no build, so
			// nothing of it can reach BuildKit.
			if b, err := recipes.GoBuild(t.Context(), tampered, r); b != nil || !errors.Is(err, lantern.ErrDigestMismatch) {
				t.Errorf("GoBuild() = %v, %v; want nil, lantern.ErrDigestMismatch", b, err)
			}
		})
	}
	if err := recipes.VerifyGo(in); err != nil {
		t.Errorf("VerifyGo() after the tampering was undone = %v, want nil", err)
	}
}

func wantMismatch(t *testing.T, err error) *recipes.DigestError {
	t.Helper()
	if !errors.Is(err, lantern.ErrDigestMismatch) {
		t.Fatalf("error = %v, want lantern.ErrDigestMismatch", err)
	}
	de, ok := errors.AsType[*recipes.DigestError](err)
	if !ok {
		t.Fatalf("error = %v, want a *recipes.DigestError", err)
	}
	return de
}

// flipByte changes the byte at off of name until the test ends.
func flipByte(t *testing.T, name string, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	orig := b[0]
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{orig}, off); err != nil {
			t.Error(err)
		}
	})
}

// appendTo appends s to name until the test ends.
func appendTo(t *testing.T, name, s string) {
	t.Helper()
	orig, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(name, info.Mode()|0o200)
	if err := os.WriteFile(name, append(bytes.Clone(orig), s...), info.Mode()|0o200); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(name, orig, 0o644); err != nil {
			t.Error(err)
		}
		os.Chmod(name, info.Mode())
	})
}

// linkTree makes dst a copy of the tree src whose files are hard links to
// src's: quick, and whole until a file is replaced.
func linkTree(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("cp", "-a", "--link", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -a --link %s %s: %v\n%s", src, dst, err, out)
	}
	// The directories may be read-only, as in a module cache; they are
	// dst's own, unlike the files, and t.TempDir's cleanup must remove
	// them.
	t.Cleanup(func() {
		filepath.WalkDir(dst, func(name string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(name, 0o755)
			}
			return nil
		})
	})
}

// TestPrepareGoNeedsTheChecksumDatabase: with the checksum database off,
// nothing would check the modules, so PrepareGo refuses before it downloads
// anything.
func TestPrepareGoNeedsTheChecksumDatabase(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on the PATH")
	}
	t.Setenv("GOSUMDB", "off")
	_, err := recipes.PrepareGo(t.Context(), loadGo(t), stringer, t.TempDir(), recipes.PrepareOptions{})
	if err == nil || !strings.Contains(err.Error(), "GOSUMDB is off") {
		t.Errorf("PrepareGo() with GOSUMDB=off = %v, want a refusal", err)
	}
}
