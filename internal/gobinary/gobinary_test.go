package gobinary_test

import (
	"bytes"
	"cmp"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/gobinary"
	"github.com/lanternfarm/lantern/internal/goproxytest"
	"github.com/lanternfarm/lantern/recipes"
)

// cacheDir is the cache the recipes' tests share: the host's module cache
// of real modules, and here a build cache, which the go command locks and
// which changes no output.
func cacheDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "lantern-recipes-test-cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// goEnv is the environment of the go command in these tests: this one's,
// without its Go settings, with extra appended (later wins).
func goEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "GO") && k != "CGO_ENABLED" {
			env = append(env, kv)
		}
	}
	return append(append(env,
		"GOENV=off", "GOFLAGS=-modcacherw", "GOTOOLCHAIN=local", "CGO_ENABLED=0",
		"GOOS=linux", "GOARCH=amd64",
		"GOPATH="+t.TempDir(), "GOCACHE="+filepath.Join(cacheDir(t), "gobinary-gocache"),
	), extra...)
}

// runGo runs the go command in dir and returns its standard output.
func runGo(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	t.Logf("go %s took %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return string(out)
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		f := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// modules of the file GOPROXY, at v1.0.0: commands with nothing in them
// but what each test needs.
var modules = map[string]map[string]string{
	"example.com/hello": {
		"go.mod":  "module example.com/hello\n\ngo 1.21\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nvar version = \"unset\"\n\nfunc main() { fmt.Println(\"hello\", version) }\n",
	},
	"example.com/cgohello": {
		"go.mod":  "module example.com/cgohello\n\ngo 1.21\n",
		"main.go": "package main\n\n// int answer(void) { return 42; }\nimport \"C\"\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(C.answer()) }\n",
	},
	"example.com/app": {
		"go.mod":  "module example.com/app\n\ngo 1.21\n\nrequire example.com/lib v1.0.0\n",
		"main.go": "package main\n\nimport \"example.com/lib\"\n\nfunc main() { println(lib.Name) }\n",
	},
	"example.com/lib": {
		"go.mod": "module example.com/lib\n\ngo 1.21\n",
		"lib.go": "package lib\n\nconst Name = \"lib\"\n",
	},
}

// fileProxy lays modules out as a file GOPROXY and returns its URL and
// each module's h1: hash.
func fileProxy(t *testing.T) (string, map[string]string) {
	t.Helper()
	return goproxytest.FileProxy(t, modules)
}

// reasons returns the Err sentinels err wraps, in order.
func reasons(err error) []error {
	var out []error
	for _, r := range []error{gobinary.ErrNotGoBinary, gobinary.ErrNoModule, gobinary.ErrGoVersion, gobinary.ErrCgo,
		gobinary.ErrNoTrimpath, gobinary.ErrVCS, gobinary.ErrReplaced, gobinary.ErrBuildMode, gobinary.ErrSetting} {
		if errors.Is(err, r) {
			out = append(out, r)
		}
	}
	return out
}

// install runs go install args... and returns the file it installed,
// name, which a cross-compile puts in GOPATH/bin/GOOS_GOARCH.
func install(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	gopath := t.TempDir()
	runGo(t, t.TempDir(), append(env, "GOPATH="+gopath, "GOBIN="), append([]string{"install"}, args...)...)
	found, _ := filepath.Glob(filepath.Join(gopath, "bin", name))
	cross, _ := filepath.Glob(filepath.Join(gopath, "bin", "*", name))
	if found = append(found, cross...); len(found) != 1 {
		t.Fatalf("go install %s installed %v, want one %s", strings.Join(args, " "), found, name)
	}
	return found[0]
}

// TestReadInstalls reads binaries the go command on this machine
// installed from module versions of a file GOPROXY: plain go installs
// are read as what they are, each other way of building is refused for
// its reason.
func TestReadInstalls(t *testing.T) {
	proxy, sums := fileProxy(t)
	env := goEnv(t, "GOPROXY="+proxy, "GOSUMDB=off", "GOMODCACHE="+t.TempDir())
	goVersion := strings.TrimSpace(runGo(t, t.TempDir(), env, "env", "GOVERSION"))

	plain := install(t, env, "hello", "-trimpath", "example.com/hello@v1.0.0")
	p, err := gobinary.Read(plain)
	if err != nil {
		t.Fatalf("Read(a plain go install) = %v", err)
	}
	digest, size, err := lantern.DigestFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	if p.Package != "example.com/hello" || p.Module != "example.com/hello" || p.Version != "v1.0.0" || p.Sum != sums["example.com/hello"] ||
		"go"+p.GoVersion != goVersion || p.GOOS != "linux" || p.GOARCH != "amd64" || p.ArchVar != "GOAMD64" || p.ArchLevel != "v1" ||
		len(p.Tags) != 0 || p.Digest != digest || p.Size != size || p.File != plain {
		t.Errorf("Read(a plain go install) = %+v, want example.com/hello v1.0.0 %s, %s, linux/amd64 GOAMD64=v1, %s", p, sums["example.com/hello"], goVersion, digest)
	}
	if got := p.Label(); got != "hello-linux-amd64" || got != recipes.GoLabel("example.com/hello", "linux", "amd64") {
		t.Errorf("Label() = %q, want hello-linux-amd64", got)
	}

	t.Run("one byte changed", func(t *testing.T) {
		data, err := os.ReadFile(plain)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(data, []byte("hello"))
		data[i] = 'j'
		changed := filepath.Join(t.TempDir(), "hello")
		if err := os.WriteFile(changed, data, 0o755); err != nil {
			t.Fatal(err)
		}
		q, err := gobinary.Read(changed)
		if err != nil {
			t.Fatal(err)
		}
		if q.Digest == p.Digest || q.Digest != lantern.DigestOf(data) || q.Version != p.Version || q.GoVersion != p.GoVersion {
			t.Errorf("Read(a changed copy) = %+v, want %+v but for the digest %s", q, p, lantern.DigestOf(data))
		}
	})

	// -ldflags are not recorded under -trimpath (go.dev/issue/52372): the
	// build reads as a plain one, and only its digest tells.
	t.Run("ldflags -X unseen", func(t *testing.T) {
		q, err := gobinary.Read(install(t, env, "hello", "-trimpath", "-ldflags=-X main.version=v1.0.0", "example.com/hello@v1.0.0"))
		if err != nil {
			t.Fatal(err)
		}
		if q.Digest == p.Digest || q.Version != p.Version || len(q.Tags) != 0 {
			t.Errorf("Read(-ldflags=-X) = %+v, want what Read(plain) says (%+v) but another digest", q, p)
		}
	})
	t.Run("tags and GOAMD64", func(t *testing.T) {
		q, err := gobinary.Read(install(t, append(env, "GOAMD64=v3"), "hello", "-trimpath", "-tags=netgo,lantern_test", "example.com/hello@v1.0.0"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.Tags, []string{"netgo", "lantern_test"}) || q.ArchVar != "GOAMD64" || q.ArchLevel != "v3" {
			t.Errorf("Read(-tags=netgo,lantern_test GOAMD64=v3) = %+v", q)
		}
	})
	for _, platform := range []struct{ goos, goarch, name, archVar string }{
		{"linux", "arm64", "hello", "GOARM64"},
		{"windows", "amd64", "hello.exe", "GOAMD64"},
	} {
		t.Run(platform.goos+"-"+platform.goarch, func(t *testing.T) {
			q, err := gobinary.Read(install(t, append(env, "GOOS="+platform.goos, "GOARCH="+platform.goarch), platform.name, "-trimpath", "example.com/hello@v1.0.0"))
			if err != nil {
				t.Fatal(err)
			}
			if q.GOOS != platform.goos || q.GOARCH != platform.goarch || q.ArchVar != platform.archVar || q.ArchLevel == "" {
				t.Errorf("Read() = %+v, want %s/%s with %s", q, platform.goos, platform.goarch, platform.archVar)
			}
			if got, want := q.Label(), recipes.GoLabel("example.com/hello", platform.goos, platform.goarch); got != want {
				t.Errorf("Label() = %q, want %q", got, want)
			}
		})
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		bin  string
		want []error
		say  string
	}{
		{name: "no trimpath", args: []string{"example.com/hello@v1.0.0"},
			want: []error{gobinary.ErrNoTrimpath}, say: "-trimpath"},
		{name: "cgo", env: []string{"CGO_ENABLED=1"}, args: []string{"-trimpath", "example.com/cgohello@v1.0.0"}, bin: "cgohello",
			want: []error{gobinary.ErrCgo}, say: "CGO_ENABLED=1"},
		{name: "pie", args: []string{"-trimpath", "-buildmode=pie", "example.com/hello@v1.0.0"},
			want: []error{gobinary.ErrBuildMode}, say: "-buildmode=pie"},
		{name: "gcflags", args: []string{"-trimpath", "-gcflags=-N", "example.com/hello@v1.0.0"},
			want: []error{gobinary.ErrSetting}, say: "-gcflags=-N"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if slices.Contains(tc.env, "CGO_ENABLED=1") {
				needGCC(t)
			}
			bin := cmp.Or(tc.bin, "hello")
			q, err := gobinary.Read(install(t, append(env, tc.env...), bin, tc.args...))
			if got := reasons(err); !slices.Equal(got, tc.want) || !strings.Contains(err.Error(), tc.say) {
				t.Fatalf("Read(go install %s) = %+v, %v; want the reasons %v, saying %q", strings.Join(tc.args, " "), q, err, tc.want, tc.say)
			}
			t.Logf("Read(go install %s): %v", strings.Join(tc.args, " "), err)
		})
	}

	// Builds in a module of one's own, not go installs of a module version.
	t.Run("module directory", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, modules["example.com/hello"])
		runGo(t, dir, env, "build", "-trimpath", "-o", "hello", ".")
		_, err := gobinary.Read(filepath.Join(dir, "hello"))
		if got := reasons(err); !slices.Equal(got, []error{gobinary.ErrVCS}) || !strings.Contains(err.Error(), "(devel)") {
			t.Fatalf("Read(go build in the module) = %v, want %v saying (devel)", err, gobinary.ErrVCS)
		}
		t.Log(err)
	})
	t.Run("git checkout", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, modules["example.com/hello"])
		for _, args := range [][]string{
			{"init", "-q"},
			{"add", "."},
			{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "hello"},
			{"tag", "v1.0.0"},
		} {
			if out, err := exec.CommandContext(t.Context(), "git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		runGo(t, dir, env, "build", "-trimpath", "-o", "hello", ".")
		_, err := gobinary.Read(filepath.Join(dir, "hello"))
		if got := reasons(err); !slices.Equal(got, []error{gobinary.ErrVCS}) || !strings.Contains(err.Error(), "vcs.revision=") {
			t.Fatalf("Read(go build in a git checkout) = %v, want %v saying vcs.revision", err, gobinary.ErrVCS)
		}
		t.Log(err)
	})
	// go build of a dependency's command, the dependency replaced: the
	// binary's module is the replaced one (Main.Replace), which a go
	// install of a module version never builds.
	t.Run("main module replaced", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"go.mod":   "module example.com/consumer\n\ngo 1.21\n\nrequire example.com/hello v1.0.0\n\nreplace example.com/hello => ./hello\n",
			"tools.go": "//go:build tools\n\npackage consumer\n\nimport _ \"example.com/hello\"\n",
		})
		writeFiles(t, filepath.Join(dir, "hello"), modules["example.com/hello"])
		runGo(t, dir, env, "build", "-trimpath", "-o", "hello.bin", "example.com/hello")
		_, err := gobinary.Read(filepath.Join(dir, "hello.bin"))
		if got := reasons(err); !slices.Equal(got, []error{gobinary.ErrReplaced}) || !strings.Contains(err.Error(), "example.com/hello v1.0.0 is replaced by ./hello") {
			t.Fatalf("Read(a replaced module's command) = %v, want %v saying what replaces what", err, gobinary.ErrReplaced)
		}
		t.Log(err)
	})
	t.Run("dependency replaced", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"go.mod": "module example.com/consumer\n\ngo 1.21\n\nreplace example.com/lib => ./lib\n",
		})
		writeFiles(t, filepath.Join(dir, "lib"), modules["example.com/lib"])
		runGo(t, dir, env, "get", "example.com/app@v1.0.0")
		runGo(t, dir, env, "build", "-trimpath", "-o", "app", "example.com/app")
		_, err := gobinary.Read(filepath.Join(dir, "app"))
		if got := reasons(err); !slices.Equal(got, []error{gobinary.ErrReplaced}) || !strings.Contains(err.Error(), "dependency example.com/lib v1.0.0 is replaced by ./lib") {
			t.Fatalf("Read(a command with a replaced dependency) = %v, want %v saying what replaces what", err, gobinary.ErrReplaced)
		}
		t.Log(err)
	})
}

// TestReadStringer reads what the go recipe's check command installs with
// a go1.23 release: `GOTOOLCHAIN=go1.23.4 GOFLAGS=-trimpath CGO_ENABLED=0
// go install golang.org/x/tools/cmd/stringer@v0.30.0`, the go command
// downloading the toolchain and the modules from GOPROXY.
func TestReadStringer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test downloads from GOPROXY")
	}
	modcache := filepath.Join(cacheDir(t), "host-modcache")
	env := goEnv(t, "GOTOOLCHAIN=go1.23.4", "GOFLAGS=-trimpath", "GOMODCACHE="+modcache)
	if p := os.Getenv("GOPROXY"); p != "" {
		env = append(env, "GOPROXY="+p)
	}
	stringer := install(t, env, "stringer", "golang.org/x/tools/cmd/stringer@v0.30.0")
	p, err := gobinary.Read(stringer)
	if err != nil {
		t.Fatal(err)
	}
	ziphash, err := os.ReadFile(filepath.Join(modcache, "cache/download/golang.org/x/tools/@v/v0.30.0.ziphash"))
	if err != nil {
		t.Fatal(err)
	}
	digest, _, err := lantern.DigestFile(stringer)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Read(stringer): %s of %s %s %s, go %s, %s/%s %s=%s, %s", p.Package, p.Module, p.Version, p.Sum, p.GoVersion, p.GOOS, p.GOARCH, p.ArchVar, p.ArchLevel, p.Digest)
	if p.Package != "golang.org/x/tools/cmd/stringer" || p.Module != "golang.org/x/tools" || p.Version != "v0.30.0" ||
		p.Sum != strings.TrimSpace(string(ziphash)) || p.GoVersion != "1.23.4" || p.GOOS != "linux" || p.GOARCH != "amd64" ||
		p.ArchVar != "GOAMD64" || p.ArchLevel != "v1" || len(p.Tags) != 0 || p.Digest != digest {
		t.Errorf("Read(stringer) = %+v, want stringer of golang.org/x/tools v0.30.0 %s, go 1.23.4, linux/amd64 GOAMD64=v1, %s", p, ziphash, digest)
	}
	if got := p.Label(); got != "stringer-linux-amd64" {
		t.Errorf("Label() = %q, want stringer-linux-amd64", got)
	}
}

// needGCC fails (in CI) or skips the test without a C compiler, which a
// cgo build needs (make deps installs gcc).
func needGCC(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no gcc for a cgo build: make deps installs it")
		}
		t.Skip("no gcc for a cgo build: make deps installs it")
	}
}
