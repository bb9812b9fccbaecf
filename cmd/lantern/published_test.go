package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/goproxy"
	"github.com/lanternfarm/lantern/internal/goproxytest"
)

// publishedModules are the module versions of the file GOPROXY the
// --published tests install from, all at v1.0.0.
var publishedModules = map[string]map[string]string{
	"example.com/hello": {
		"go.mod":  "module example.com/hello\n\ngo 1.21\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
	},
	"example.com/cgohello": {
		"go.mod":  "module example.com/cgohello\n\ngo 1.21\n",
		"main.go": "package main\n\n// int answer(void) { return 42; }\nimport \"C\"\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(C.answer()) }\n",
	},
}

// publishedProxy lays publishedModules out as a file GOPROXY and returns
// the go command's environment to install from it with the host's go (no
// checksum database: the modules are made up), and each module's h1: hash.
func publishedProxy(t *testing.T) ([]string, map[string]string) {
	t.Helper()
	proxy, sums := goproxytest.FileProxy(t, publishedModules)
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "GO") && k != "CGO_ENABLED" {
			env = append(env, kv)
		}
	}
	cache := filepath.Join(os.TempDir(), "lantern-recipes-test-cache", "gobinary-gocache") // internal/gobinary's tests' too
	return append(env, "GOENV=off", "GOFLAGS=-modcacherw", "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64",
		"GOPROXY="+proxy, "GOSUMDB=off", "GOMODCACHE="+t.TempDir(), "GOCACHE="+cache), sums
}

// hostInstall runs the host's go install with args and env (later wins)
// and returns the binary it installed.
func hostInstall(t *testing.T, env []string, args ...string) string {
	t.Helper()
	gopath := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "go", append([]string{"install"}, args...)...)
	cmd.Dir, cmd.Env = t.TempDir(), append(env, "GOPATH="+gopath, "GOBIN=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	found, _ := filepath.Glob(filepath.Join(gopath, "bin", "*"))
	cross, _ := filepath.Glob(filepath.Join(gopath, "bin", "*", "*"))
	found = slices.DeleteFunc(append(found, cross...), func(f string) bool { fi, err := os.Stat(f); return err != nil || fi.IsDir() })
	if len(found) != 1 {
		t.Fatalf("go install %s installed %v, want one binary", strings.Join(args, " "), found)
	}
	return found[0]
}

// TestReadPublished: binaries the host's go command installed are grouped
// into the claims that reproduce them — one per Go release and tags, with
// its binaries' platforms and digests — and every binary a go install of a
// module version cannot reproduce is refused, naming the file and why, as
// a command-line error, with nothing returned to claim.
func TestReadPublished(t *testing.T) {
	env, sums := publishedProxy(t)
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	goVersion := strings.TrimPrefix(strings.TrimSpace(string(out)), "go")
	if _, err := lantern.ParseGoVersion(goVersion); err != nil {
		t.Fatalf("the host's go is %s, which no claim can name: %v", goVersion, err)
	}
	dir := t.TempDir()
	dist := func(name, file string) string { // as a release job's dist/ has it
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return putFile(t, dir, name, string(b))
	}
	const hello = "example.com/hello@v1.0.0"
	amd64 := dist("hello-amd64", hostInstall(t, env, "-trimpath", hello))
	arm64 := dist("hello-arm64", hostInstall(t, append(env, "GOARCH=arm64"), "-trimpath", hello))
	windows := dist("hello.exe", hostInstall(t, append(env, "GOOS=windows"), "-trimpath", hello))
	tagged := dist("hello-tagged", hostInstall(t, env, "-trimpath", "-tags=zz,aa", hello))
	cgo := dist("cgohello", hostInstall(t, append(env, "CGO_ENABLED=1"), "-trimpath", "example.com/cgohello@v1.0.0"))
	noTrimpath := dist("hello-no-trimpath", hostInstall(t, env, hello))
	v3 := dist("hello-v3", hostInstall(t, append(env, "GOAMD64=v3"), "-trimpath", hello))
	digest := func(f string) lantern.Digest {
		d, _, err := lantern.DigestFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	builds, err := readPublished([]string{windows, tagged, amd64, arm64}, "", "")
	if err != nil {
		t.Fatalf("readPublished(plain installs) = %v", err)
	}
	want := []*publishedBuild{
		{Package: "example.com/hello", Module: "example.com/hello", Version: "v1.0.0", Sum: sums["example.com/hello"],
			Go:        lantern.GoBuild{Version: goVersion, Platforms: []string{"linux/amd64", "linux/arm64", "windows/amd64"}},
			Artefacts: map[string]lantern.Digest{"hello-linux-amd64": digest(amd64), "hello-linux-arm64": digest(arm64), "hello-windows-amd64.exe": digest(windows)},
			Files:     map[string]string{"hello-linux-amd64": amd64, "hello-linux-arm64": arm64, "hello-windows-amd64.exe": windows}},
		// The tags in the order the binary records them: a rebuild with
		// them sorted would record them otherwise.
		{Package: "example.com/hello", Module: "example.com/hello", Version: "v1.0.0", Sum: sums["example.com/hello"],
			Go:        lantern.GoBuild{Version: goVersion, Platforms: []string{"linux/amd64"}, Tags: []string{"zz", "aa"}},
			Artefacts: map[string]lantern.Digest{"hello-linux-amd64": digest(tagged)},
			Files:     map[string]string{"hello-linux-amd64": tagged}},
	}
	if diff := cmp.Diff(want, builds); diff != "" {
		t.Errorf("readPublished() mismatch (-want +got):\n%s", diff)
	}
	if _, err := readPublished([]string{amd64}, "example.com/hello", "v1.0.0"); err != nil {
		t.Errorf("readPublished(hello, given example.com/hello@v1.0.0) = %v", err)
	}

	// The claims: the module the checksum database gives must be the one
	// the binaries name.
	m := &goproxy.Module{Path: "example.com/hello", Version: "v1.0.0", Zip: lantern.DigestOf([]byte("zip")), Sum: sums["example.com/hello"],
		URL: "https://proxy.example/example.com/hello/@v/v1.0.0.zip"}
	now := time.Now()
	for _, b := range builds {
		c, err := b.claim(m, now)
		if err != nil {
			t.Fatalf("claim(%s) = %v", b.source(), err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("claim(%s) = %+v, which is not valid: %v", b.source(), c, err)
		}
		if c.Go == nil || c.Go.Version != goVersion || !slices.Equal(c.Go.Platforms, b.Go.Platforms) || !slices.Equal(c.Go.Tags, b.Go.Tags) ||
			!cmp.Equal(c.Artefacts, b.Artefacts) || c.Source.Digest != m.Zip || c.Source.GoSum != m.Sum || c.Recipe != "go" {
			t.Errorf("claim(%s) = %+v with go %v, want the binaries' release, platforms, tags and digests", b.source(), c, c.Go)
		}
	}
	other := *m
	other.Sum = "h1:" + strings.Repeat("A", 43) + "="
	if _, err := builds[0].claim(&other, now); !isContradicted(err) || !strings.Contains(err.Error(), "checksum database") {
		t.Errorf("claim(a module the checksum database hashes otherwise) = %v, want a contradiction", err)
	}
	other = *m
	other.Path = "example.com"
	if _, err := builds[0].claim(&other, now); !isUsage(err) || !strings.Contains(err.Error(), "module example.com") {
		t.Errorf("claim(another module) = %v, want a usage error", err)
	}

	notGo := putFile(t, dir, "README", "not a binary")
	for _, tc := range []struct {
		name         string
		files        []string
		pkg, version string
		want         []string // in the error
	}{
		{"cgo", []string{amd64, cgo}, "", "", []string{cgo, "built with cgo"}},
		{"without -trimpath", []string{noTrimpath, arm64}, "", "", []string{noTrimpath, "without -trimpath"}},
		{"GOAMD64=v3", []string{v3}, "", "", []string{v3, "GOAMD64=v3", "GOAMD64 unset"}},
		{"two of one label", []string{amd64, arm64, dist("hello-copy", amd64)}, "", "", []string{amd64, filepath.Join(dir, "hello-copy"), "both hello-linux-amd64"}},
		{"another version than given", []string{amd64}, "example.com/hello", "v1.0.1", []string{amd64, "is example.com/hello@v1.0.0, not example.com/hello@v1.0.1"}},
		{"another package than given", []string{amd64}, "example.com/hello/cmd/x", "v1.0.0", []string{amd64, "not example.com/hello/cmd/x@v1.0.0"}},
		{"missing", []string{amd64, filepath.Join(dir, "no-such-file")}, "", "", []string{"no-such-file"}},
		{"not a Go binary", []string{notGo}, "", "", []string{notGo, "not a Go binary"}},
		{"every file at fault", []string{cgo, v3, noTrimpath}, "", "", []string{cgo, v3, noTrimpath}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			builds, err := readPublished(tc.files, tc.pkg, tc.version)
			if !isUsage(err) || builds != nil {
				t.Fatalf("readPublished() = %v, %v; want no builds and a usage error (exit 2)", builds, err)
			}
			for _, w := range append(tc.want, "nothing was claimed") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("readPublished() = %v, want %q in it", err, w)
				}
			}
		})
	}
}

func isUsage(err error) bool {
	_, ok := errors.AsType[*usageError](err)
	return ok
}

func isContradicted(err error) bool {
	_, ok := errors.AsType[*contradictedError](err)
	return ok
}

// TestRebuildPublishedRefused: through the command line, a refused
// binary among others exits 2 naming it, and the farm gets no request;
// so do flags --published replaces.
func TestRebuildPublishedRefused(t *testing.T) {
	env, _ := publishedProxy(t)
	dir := t.TempDir()
	pw := []string{"LANTERN_PASSWORD="}
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "ci").must(t, "keygen")
	plain := hostInstall(t, env, "-trimpath", "example.com/hello@v1.0.0")
	cgo := hostInstall(t, append(env, "CGO_ENABLED=1"), "-trimpath", "example.com/cgohello@v1.0.0")
	var requests atomic.Int32
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
	defer farm.Close()
	given := []string{"rebuild", "--farm", farm.URL, "--key", "ci.key", "--wait", "1m"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cgo among others", []string{"--published", plain, "--published", cgo}, cgo + ": built with cgo"},
		{"with --go", []string{"--published", plain, "--go", "1.23.4"}, "come from the --published binaries"},
		{"with --platform", []string{"--published", plain, "--platform", "linux/arm64"}, "come from the --published binaries"},
		{"with --fetch", []string{"--published", plain, "--fetch", "https://example.org/x.tar.gz", "--build", "x.json"}, "not a tarball"},
		{"two sources", []string{"a@v1.0.0", "b@v1.0.0", "--published", plain}, "at most one PKG@VERSION"},
		{"another source", []string{"example.com/hello@v1.0.1", "--published", plain}, "not example.com/hello@v1.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runLantern(t, dir, pw, append(given, tc.args...)...).fails(t, strings.Join(tc.args, " "), 2, tc.want)
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("refused command lines made %d requests to the farm, want none", n)
	}
}

// TestWaitAllPublished: rebuild --published follows each of its claims,
// and counts only the verdicts that compare with what it published: one
// claim reproduced and equal to its binaries, another whose builders
// agree on other bytes than its binary, exit 3 naming the file; the
// verdict of another claim of the same job (one with no published
// artefact, which is reproduced) does not stand in for it.
func TestWaitAllPublished(t *testing.T) {
	old := pollEvery
	pollEvery = time.Millisecond
	t.Cleanup(func() { pollEvery = old })
	const source = "example.com/hello@v1.0.0"
	b1, b2 := lantern.DigestOf([]byte("builder 1")), lantern.DigestOf([]byte("builder 2"))
	names := map[lantern.Digest]string{b1: "builder-1", b2: "builder-2"}
	done := map[lantern.Digest]builderJob{b1: {State: "done"}, b2: {State: "done"}}
	made := lantern.DigestOf([]byte("what the builders made"))
	changed := lantern.DigestOf([]byte("one byte changed"))
	verdict := func(job, label string, published lantern.Digest) lantern.Verdict {
		v := lantern.Decide(lantern.Source{Name: "example.com/hello", Version: "v1.0.0"}, label, published, 2,
			[]lantern.Outcome{{Builder: b1, Output: made}, {Builder: b2, Output: made}})
		v.Job = job
		return v
	}
	// Job j1: go1.23.4 for linux/amd64 and windows/amd64, published as
	// built. Job j2: go1.24.4 for linux/amd64, published with a byte
	// changed; a claim of the same job that publishes nothing is reproduced.
	f1 := (&farmScript{states: []farmState{{done, []lantern.Verdict{
		verdict("j1", "hello-linux-amd64", made), verdict("j1", "hello-windows-amd64.exe", made)}}}}).serve(t, "j1", source, names)
	f2 := (&farmScript{states: []farmState{{done, []lantern.Verdict{
		verdict("j2", "hello-linux-amd64", lantern.Digest{}), verdict("j2", "hello-linux-amd64", changed)}}}}).serve(t, "j2", source, names)
	runs := []rebuildRun{
		{api: f1.URL, source: source, job: "j1", gob: &lantern.GoBuild{Version: "1.23.4", Platforms: []string{"linux/amd64", "windows/amd64"}},
			published: map[string]lantern.Digest{"hello-linux-amd64": made, "hello-windows-amd64.exe": made},
			files:     map[string]string{"hello-linux-amd64": "dist/hello", "hello-windows-amd64.exe": "dist/hello.exe"}},
		{api: f2.URL, source: source, job: "j2", gob: &lantern.GoBuild{Version: "1.24.4", Platforms: []string{"linux/amd64"}},
			published: map[string]lantern.Digest{"hello-linux-amd64": changed}, files: map[string]string{"hello-linux-amd64": "dist/hello-changed"}},
	}
	var out bytes.Buffer
	err := waitAll(t.Context(), &stdio{out: &out, err: &bytes.Buffer{}}, runs, time.Minute, false)
	if code := exitCode(&bytes.Buffer{}, err); code != 3 {
		t.Fatalf("waitAll() = %v (exit %d), want exit 3", err, code)
	}
	for _, w := range []string{"hello-linux-amd64 mismatch against the published artefact", "the published is " + changed.String(), "dist/hello-changed"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("waitAll() = %v, want %q in it", err, w)
		}
	}
	if strings.Contains(err.Error(), "dist/hello.exe") {
		t.Errorf("waitAll() = %v, which blames the reproduced claim's files", err)
	}
	for _, w := range []string{source + ", go1.23.4 for linux/amd64,windows/amd64:", source + " hello-windows-amd64.exe: reproduced",
		source + ", go1.24.4 for linux/amd64:", source + " hello-linux-amd64: mismatch", "published  " + changed.String()} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("waitAll() printed:\n%s\nwant %q in it", out.String(), w)
		}
	}

	// Both reproduced and equal: exit 0, and --json has both claims.
	out.Reset()
	runs[1].published, runs[1].files = nil, nil // a claim of j2 that publishes nothing
	if err := waitAll(t.Context(), &stdio{out: &out, err: &bytes.Buffer{}}, runs, time.Minute, true); err != nil {
		t.Fatalf("waitAll(all reproduced) = %v", err)
	}
	var res rebuildResults
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("--json printed %q: %v", out.String(), err)
	}
	if res.Status != "reproduced" || len(res.Claims) != 2 || res.Claims[0].Files["hello-windows-amd64.exe"] != "dist/hello.exe" ||
		res.Claims[0].Go.Version != "1.23.4" || len(res.Claims[0].Verdicts) != 2 || len(res.Claims[1].Verdicts) != 1 {
		t.Errorf("--json = %+v, want both claims reproduced, with their Go and files", res)
	}
}
