package recipes

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/buildkit/solver/pb"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/lanternfarm/lantern"
)

// released are the digests of every recipe file ever released. A released
// file never changes: its digest is in the attestations made with it, and
// changing it would change what they meant. A new recipe version is a new
// file, NAME/vN+1.json, added here.
var released = map[string]string{
	"go/v1.json":      "sha256:ebe7eb30598b6c27ae4037840fca294318070b6db7174db4cff8e1b876f0f358",
	"go/v2.json":      "sha256:37cf687543c9d6e170c06d4d734016992767424a1e4ba86d68782e35ebc8835d",
	"generic/v1.json": "sha256:cb5dbe480d1eed630b1bf15bba1034759111bca273609d6d81f2243c1b3480f5",
}

func TestReleasedRecipesNeverChange(t *testing.T) {
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		got := lantern.DigestOf(b)
		want, ok := released[name]
		switch {
		case !ok:
			t.Errorf("recipes/%s (%s) is not in the released list: add it to released in recipe_test.go when it is released", name, got)
		case got.String() != want:
			t.Errorf("recipes/%s changed: its digest is %s, and %s when it was released.\n"+
				"Its digest is in every attestation made with it: a released recipe never changes. "+
				"Undo the change and add the next version as a new file (e.g. %s/v2.json) instead.",
				name, got, want, filepath.Dir(name))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range released {
		if _, err := files.ReadFile(name); err != nil {
			t.Errorf("released recipe recipes/%s is gone: %v; old attestations name it, keep it", name, err)
		}
	}
}

func TestLoad(t *testing.T) {
	r, err := Load("go")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("go", "v2.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := lantern.Recipe{BuildType: "https://lanternfarm.github.io/lantern/recipes/go/v2", Digest: lantern.DigestOf(b)}
	if diff := cmp.Diff(want, r.Ref()); diff != "" {
		t.Errorf("Load(go).Ref() mismatch (-want +got):\n%s", diff)
	}
	if r.Name != "go" || r.Version != 2 || !bytes.Equal(r.Bytes(), b) {
		t.Errorf("Load(go) = %s v%d with %d bytes, want go v2 with go/v2.json's %d", r.Name, r.Version, len(r.Bytes()), len(b))
	}
	if r.Go == nil || r.Go.DefaultGoVersion != "1.24.4" || r.Go.DefaultGOOS != "linux" || r.Go.DefaultGOARCH != "amd64" {
		t.Errorf("Load(go).Go = %+v, want the defaults go1.24.4 linux/amd64", r.Go)
	}
	for k, v := range map[string]string{"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-trimpath", "GOSUMDB": "off", "TZ": "UTC"} {
		if got := r.Go.Env[k]; got != v {
			t.Errorf("Load(go).Go.Env[%s] = %q, want %q", k, got, v)
		}
	}

	v2, err := LoadVersion("go", 2)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Ref() != r.Ref() {
		t.Errorf("LoadVersion(go, 2) = %v, want %v", v2.Ref(), r.Ref())
	}
	v1, err := LoadVersion("go", 1)
	if err != nil || v1.BuildType != BuildTypeBase+"go/v1" {
		t.Errorf("LoadVersion(go, 1) = %v, %v; want go/v1, which old attestations name", v1, err)
	}
	byDigest, err := ByDigest(r.Digest)
	if err != nil || byDigest.Ref() != r.Ref() {
		t.Errorf("ByDigest(%s) = %v, %v; want %v", r.Digest, byDigest, err, r.Ref())
	}
	if !slices.Contains(Names(), "go") {
		t.Errorf("Names() = %q, want go among them", Names())
	}

	for _, tc := range []struct {
		name string
		load func() (*Recipe, error)
	}{
		{"unknown name", func() (*Recipe, error) { return Load("cobol") }},
		{"path", func() (*Recipe, error) { return Load("../go") }},
		{"empty", func() (*Recipe, error) { return Load("") }},
		{"unknown version", func() (*Recipe, error) { return LoadVersion("go", 99) }},
		{"version 0", func() (*Recipe, error) { return LoadVersion("go", 0) }},
		{"unknown digest", func() (*Recipe, error) { return ByDigest(lantern.DigestOf([]byte("no recipe"))) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := tc.load(); !errors.Is(err, ErrNoRecipe) {
				t.Errorf("= %v, %v; want ErrNoRecipe", r, err)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	good, err := files.ReadFile("go/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown field", `"summary":`, `"colour": "blue", "summary":`, "unknown field"},
		{"build type of another version", `recipes/go/v1"`, `recipes/go/v2"`, "buildType"},
		{"another name", `"name": "go"`, `"name": "gone"`, "buildType"},
		{"unknown placeholder", `"{tmp}/gocache"`, `"{home}/gocache"`, "unknown placeholder {home}"},
		{"unbalanced brace", `"{tmp}/gocache"`, `"{tmp/gocache"`, "unbalanced"},
		{"placeholder in the toolchain", `linux-{hostArch}`, `{goos}-{hostArch}`, "unknown placeholder {goos}"},
		{"relative mount", `"toolchain": "/toolchain"`, `"toolchain": "toolchain"`, "paths.toolchain"},
		{"root mount", `"out": "/out"`, `"out": "/"`, "paths.out"},
		{"bad env name", `"TZ": "UTC"`, `"tz": "UTC"`, `env: name "tz"`},
		{"bad Go version", `"defaultGoVersion": "1.24.4"`, `"defaultGoVersion": "latest"`, "defaultGoVersion"},
		{"no command", `"args": ["{toolchain}/bin/go", "install", "-trimpath", "{package}@{version}"]`, `"args": []`, "args: missing"},
		{"data after", "}\n}\n", "}\n}\n{}", "after"},
		// {tagsFlag} is left out without tags: only as an argument of its own.
		{"tags inside an argument", `"-trimpath",`, `"-trimpath{tagsFlag}",`, "stands alone"},
		{"tags in the environment", `"GOFLAGS": "-trimpath"`, `"GOFLAGS": "-trimpath {tagsFlag}"`, "env.GOFLAGS"},
		{"tags as the directory", `"dir": "{tmp}"`, `"dir": "{tagsFlag}"`, "dir:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(good, []byte(tc.old)) {
				t.Fatalf("go/v1.json has no %q", tc.old)
			}
			b := bytes.Replace(good, []byte(tc.old), []byte(tc.new), 1)
			if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse() = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	good, err := files.ReadFile("go/v1.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"name":"generic","version":1,"buildType":"https://lanternfarm.github.io/lantern/recipes/generic/v1","summary":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		if r.Digest != lantern.DigestOf(b) {
			t.Errorf("Parse().Digest = %s, want the digest of the bytes", r.Digest)
		}
		if want := BuildTypeBase + r.Name + "/v"; !strings.HasPrefix(r.BuildType, want) {
			t.Errorf("Parse().BuildType = %q, want it under %s", r.BuildType, want)
		}
		if (r.Name == "go") != (r.Go != nil) {
			t.Errorf("Parse() of recipe %q: Go parameters %v", r.Name, r.Go != nil)
		}
	})
}

// TestHash1 checks the h1: hashes computed here against x/mod's dirhash,
// which the go command uses.
func TestHash1(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"example.com/m@v1.0.0/go.mod":       "module example.com/m\n",
		"example.com/m@v1.0.0/m.go":         "package m\n",
		"example.com/m@v1.0.0/sub/a b.txt":  "spaces\n",
		"example.com/m@v1.0.0/sub/_go.mod":  "module sub\n",
		"example.com/m@v1.0.0/z/empty.file": "",
	}
	zipName := filepath.Join(dir, "m.zip")
	zf, err := os.Create(zipName)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(zf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[name]))
		tree := filepath.Join(dir, "tree", filepath.FromSlash(strings.TrimPrefix(name, "example.com/m@v1.0.0/")))
		os.MkdirAll(filepath.Dir(tree), 0o755)
		if err := os.WriteFile(tree, []byte(files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zf.Close()

	sums, err := zipSums(zipName)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dirhash.HashZip(zipName, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	if got := hash1(sums); got != want {
		t.Errorf("hash1(zipSums()) = %s, want dirhash.HashZip's %s", got, want)
	}
	want, err = dirhash.HashDir(filepath.Join(dir, "tree"), "example.com/m@v1.0.0", dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := treeHash(filepath.Join(dir, "tree"), "example.com/m@v1.0.0"); got != want || err != nil {
		t.Errorf("treeHash() = %s, %v; want dirhash.HashDir's %s", got, err, want)
	}
	mod := filepath.Join(dir, "tree", "go.mod")
	want, err = dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return os.Open(mod) })
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := hashGoMod(mod); got != want || err != nil {
		t.Errorf("hashGoMod() = %s, %v; want dirhash.Hash1's %s", got, err, want)
	}

	// A symbolic link in a toolchain's tree is refused: the tree is
	// compared with a zip, which has none.
	if err := os.Symlink("m.go", filepath.Join(dir, "tree", "link.go")); err != nil {
		t.Fatal(err)
	}
	if _, err := treeHash(filepath.Join(dir, "tree"), "example.com/m@v1.0.0"); err == nil {
		t.Errorf("treeHash() of a tree with a symbolic link = nil error, want one")
	}
}

func TestResolveSpec(t *testing.T) {
	r, err := Load("go")
	if err != nil {
		t.Fatal(err)
	}
	base := GoSpec{Module: "golang.org/x/tools", Version: "v0.30.0", Package: "golang.org/x/tools/cmd/stringer"}
	got, err := resolveSpec(r.Go, base)
	if err != nil {
		t.Fatal(err)
	}
	want := base
	want.GoVersion, want.GOOS, want.GOARCH = "1.24.4", "linux", "amd64"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolveSpec() mismatch (-want +got):\n%s", diff)
	}
	withGo := base
	withGo.GoVersion = "go1.25.1"
	if got, err := resolveSpec(r.Go, withGo); err != nil || got.GoVersion != "1.25.1" {
		t.Errorf("resolveSpec(GoVersion go1.25.1) = %q, %v; want 1.25.1", got.GoVersion, err)
	}
	for _, tc := range []struct {
		name   string
		change func(*GoSpec)
		want   string
	}{
		{"no module", func(s *GoSpec) { s.Module = "" }, "module"},
		{"query version", func(s *GoSpec) { s.Version = "latest" }, "version"},
		{"short version", func(s *GoSpec) { s.Version = "v0.30" }, "version"},
		{"package outside", func(s *GoSpec) { s.Package = "golang.org/x/toolsy/cmd" }, "not in module"},
		{"bad Go version", func(s *GoSpec) { s.GoVersion = "1.24.4; rm -rf /" }, "goVersion"},
		{"Go language version", func(s *GoSpec) { s.GoVersion = "1.24" }, "goVersion"},
		{"bad GOOS", func(s *GoSpec) { s.GOOS = "Linux OS" }, "goos"},
		{"bad h1", func(s *GoSpec) { s.SourceGoSum = "sha256:x" }, "sourceGoSum"},
		{"tags with a comma", func(s *GoSpec) { s.Tags = []string{"netgo,osusergo"} }, "tags: [0]"},
		{"a flag for a tag", func(s *GoSpec) { s.Tags = []string{"-ldflags=-X=main.x=1"} }, "tags: [0]"},
		{"a tag twice", func(s *GoSpec) { s.Tags = []string{"netgo", "netgo"} }, "named twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.change(&s)
			if _, err := resolveSpec(r.Go, s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("resolveSpec() = %v, want an error about %s", err, tc.want)
			}
		})
	}
}

// TestResolveSpecTags: go/v2 takes build tags, in their order; go/v1,
// whose command has no -tags, refuses them rather than build without.
func TestResolveSpecTags(t *testing.T) {
	v2, err := LoadVersion("go", 2)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := LoadVersion("go", 1)
	if err != nil {
		t.Fatal(err)
	}
	s := GoSpec{Module: "golang.org/x/tools", Version: "v0.30.0", Package: "golang.org/x/tools/cmd/stringer", Tags: []string{"osusergo", "netgo"}}
	if got, err := resolveSpec(v2.Go, s); err != nil || !slices.Equal(got.Tags, []string{"osusergo", "netgo"}) {
		t.Errorf("go/v2 resolveSpec(tags osusergo,netgo) = %q, %v; want the tags as given", got.Tags, err)
	}
	if _, err := resolveSpec(v1.Go, s); err == nil || !strings.Contains(err.Error(), "go/v2") {
		t.Errorf("go/v1 resolveSpec(tags) = %v, want a refusal naming go/v2", err)
	}
	in := fakeInputs(v1)
	in.Spec.Tags = []string{"netgo"}
	if _, err := GoLLB(in, v1); err == nil || !strings.Contains(err.Error(), "tags") {
		t.Errorf("go/v1 GoLLB(tags) = %v, want a refusal", err)
	}
}

func TestBinaryPath(t *testing.T) {
	r, err := Load("go")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pkg, goos, goarch, want string
	}{
		{"golang.org/x/tools/cmd/stringer", "linux", "amd64", "bin/stringer"},
		{"golang.org/x/tools/cmd/stringer", "linux", "arm64", "bin/linux_arm64/stringer"},
		{"golang.org/x/tools/cmd/stringer", "windows", "amd64", "bin/windows_amd64/stringer.exe"},
		{"example.com/tool/v2", "linux", "amd64", "bin/tool"},
		{"example.com/tool/v1", "linux", "amd64", "bin/v1"},
		{"example.com/v2", "linux", "amd64", "bin/example.com"},
		{"example.com/tool/v2x", "linux", "amd64", "bin/v2x"},
	} {
		in := &GoInputs{Spec: GoSpec{Package: tc.pkg, GOOS: tc.goos, GOARCH: tc.goarch}, HostArch: "amd64"}
		if got, err := in.BinaryPath(r); got != tc.want || err != nil {
			t.Errorf("BinaryPath() of %s for %s/%s = %q, %v; want %q", tc.pkg, tc.goos, tc.goarch, got, err, tc.want)
		}
	}
}

// fakeInputs are inputs as PrepareGo records them, without the files.
func fakeInputs(r *Recipe) *GoInputs {
	d := func(s string) lantern.Digest { return lantern.DigestOf([]byte(s)) }
	return &GoInputs{
		Spec:   GoSpec{Module: "example.com/m", Version: "v1.2.3+incompatible", Package: "example.com/m/cmd/x", GoVersion: "1.24.4", GOOS: "linux", GOARCH: "arm64"},
		Recipe: r.Ref(),
		Source: lantern.Source{Name: "example.com/m", Version: "v1.2.3+incompatible", Digest: d("m zip"), GoSum: "h1:m"},
		Toolchain: GoToolchain{Module: "golang.org/toolchain", Version: "v0.0.1-go1.24.4.linux-amd64",
			Zip: d("toolchain zip"), Sum: "h1:t", Tree: "h1:tree", Dir: "/nonexistent/toolchain"},
		Modules: []GoModule{
			{Path: "example.com/dep", Version: "v0.1.0", Mod: d("dep mod"), ModSum: "h1:dm"},
			{Path: "example.com/dep", Version: "v0.2.0", Zip: d("dep zip"), Sum: "h1:d", Mod: d("dep mod 2"), ModSum: "h1:dm2"},
			{Path: "example.com/m", Version: "v1.2.3+incompatible", Zip: d("m zip"), Sum: "h1:m", Mod: d("m mod"), ModSum: "h1:mm"},
		},
		ProxyDir: "/nonexistent/goproxy",
		HostArch: "amd64",
	}
}

func TestDependencies(t *testing.T) {
	r, err := Load("go")
	if err != nil {
		t.Fatal(err)
	}
	d := func(s string) lantern.Digest { return lantern.DigestOf([]byte(s)) }
	want := []lantern.Dependency{
		{Name: "golang.org/toolchain@v0.0.1-go1.24.4.linux-amd64", URI: "pkg:golang/golang.org/toolchain@v0.0.1-go1.24.4.linux-amd64", Digest: d("toolchain zip")},
		{Name: "example.com/dep@v0.1.0/go.mod", URI: "pkg:golang/example.com/dep@v0.1.0#go.mod", Digest: d("dep mod")},
		{Name: "example.com/dep@v0.2.0", URI: "pkg:golang/example.com/dep@v0.2.0", Digest: d("dep zip")},
		{Name: "example.com/dep@v0.2.0/go.mod", URI: "pkg:golang/example.com/dep@v0.2.0#go.mod", Digest: d("dep mod 2")},
		{Name: "example.com/m@v1.2.3+incompatible/go.mod", URI: "pkg:golang/example.com/m@v1.2.3%2Bincompatible#go.mod", Digest: d("m mod")},
	}
	if diff := cmp.Diff(want, fakeInputs(r).Dependencies()); diff != "" {
		t.Errorf("Dependencies() mismatch (-want +got):\n%s", diff)
	}
}

// goExec returns the one build step of GoLLB's definition of in.
func goExec(t *testing.T, in *GoInputs, r *Recipe) *pb.ExecOp {
	t.Helper()
	st, err := GoLLB(in, r)
	if err != nil {
		t.Fatal(err)
	}
	def, err := st.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var execs []*pb.ExecOp
	for _, b := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(b); err != nil {
			t.Fatal(err)
		}
		if e := op.GetExec(); e != nil {
			execs = append(execs, e)
		}
	}
	if len(execs) != 1 {
		t.Fatalf("the definition has %d build steps, want 1", len(execs))
	}
	return execs[0]
}

// TestGoLLB reads the definition GoLLB makes back: the sandbox the recipe
// promises.
func TestGoLLB(t *testing.T) {
	r, err := Load("go")
	if err != nil {
		t.Fatal(err)
	}
	in := fakeInputs(r)
	st, err := GoLLB(in, r)
	if err != nil {
		t.Fatal(err)
	}
	def, err := st.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var execs []*pb.ExecOp
	locals := map[string]bool{}
	for _, b := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(b); err != nil {
			t.Fatal(err)
		}
		if e := op.GetExec(); e != nil {
			execs = append(execs, e)
			if p := op.GetPlatform(); p.GetOS() != "linux" || p.GetArchitecture() != "amd64" {
				t.Errorf("the build step's platform = %v, want linux/amd64, the toolchain's", p)
			}
		}
		if s := op.GetSource(); s != nil {
			if strings.HasPrefix(s.GetIdentifier(), "local://") {
				locals[strings.TrimPrefix(s.GetIdentifier(), "local://")] = true
			} else {
				t.Errorf("source %q: want only local sources (and no image)", s.GetIdentifier())
			}
		}
	}
	if len(execs) != 1 {
		t.Fatalf("the definition has %d build steps, want 1", len(execs))
	}
	e := execs[0]
	if e.GetNetwork() != pb.NetMode_NONE {
		t.Errorf("the build step's network = %v, want none", e.GetNetwork())
	}
	if !locals[LocalToolchain] || !locals[LocalGoProxy] || len(locals) != 2 {
		t.Errorf("local sources = %v, want %s and %s", locals, LocalToolchain, LocalGoProxy)
	}
	wantArgs := []string{"/toolchain/bin/go", "install", "-trimpath", "example.com/m/cmd/x@v1.2.3+incompatible"}
	if diff := cmp.Diff(wantArgs, e.GetMeta().GetArgs()); diff != "" {
		t.Errorf("args mismatch (-want +got):\n%s", diff)
	}
	env := e.GetMeta().GetEnv()
	for _, kv := range []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=-trimpath",
		"GOPROXY=file:///goproxy", "GOSUMDB=off", "GOPATH=/out", "PATH=/toolchain/bin"} {
		if !slices.Contains(env, kv) {
			t.Errorf("env %q lacks %s", env, kv)
		}
	}
	if len(env) != len(r.Go.Env) {
		t.Errorf("env has %d variables, the recipe %d: %q", len(env), len(r.Go.Env), env)
	}
	mounts := map[string]*pb.Mount{}
	for _, m := range e.GetMounts() {
		mounts[m.GetDest()] = m
	}
	for dest, check := range map[string]func(m *pb.Mount) bool{
		"/":          func(m *pb.Mount) bool { return m.GetInput() == -1 }, // scratch
		"/toolchain": func(m *pb.Mount) bool { return m.GetReadonly() && m.GetInput() >= 0 },
		"/goproxy":   func(m *pb.Mount) bool { return m.GetReadonly() && m.GetInput() >= 0 },
		"/tmp":       func(m *pb.Mount) bool { return m.GetMountType() == pb.MountType_TMPFS },
		"/out":       func(m *pb.Mount) bool { return !m.GetReadonly() && m.GetOutput() >= 0 },
	} {
		if m, ok := mounts[dest]; !ok || !check(m) {
			t.Errorf("mount %s = %v, not as the recipe wants it", dest, m)
		}
	}
	if len(mounts) != 5 {
		t.Errorf("mounts = %v, want /, /toolchain, /goproxy, /tmp and /out only", mounts)
	}

	// With build tags, go install gets -tags, in the order given (the go
	// command records them so in the binary), and the rest is the same.
	tagged := *in
	tagged.Spec.Tags = []string{"osusergo", "netgo"}
	e = goExec(t, &tagged, r)
	wantArgs = []string{"/toolchain/bin/go", "install", "-trimpath", "-tags=osusergo,netgo", "example.com/m/cmd/x@v1.2.3+incompatible"}
	if diff := cmp.Diff(wantArgs, e.GetMeta().GetArgs()); diff != "" {
		t.Errorf("args with tags mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(env, e.GetMeta().GetEnv()); diff != "" {
		t.Errorf("env with tags mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range [][]string{{"netgo,osusergo"}, {"netgo", "netgo"}, {"-toolexec=/bin/sh"}} {
		tagged.Spec.Tags = bad
		if _, err := GoLLB(&tagged, r); err == nil {
			t.Errorf("GoLLB(tags %q) = nil error, want a refusal", bad)
		}
	}

	other := *in
	other.Recipe.Digest = lantern.DigestOf([]byte("another recipe"))
	if _, err := GoLLB(&other, r); err == nil {
		t.Errorf("GoLLB() of inputs prepared with another recipe = nil error, want one")
	}
}
