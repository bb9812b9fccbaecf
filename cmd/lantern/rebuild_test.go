package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// startLantern starts lantern with args in dir, with the environment
// runIn gives, and returns the function that waits for it to exit.
func startLantern(t *testing.T, dir string, env []string, args ...string) func() result {
	t.Helper()
	cmd := exec.Command(lanternBin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANTERN_") && !strings.HasPrefix(kv, "COSIGN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waited bool
	var r result
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			<-done
		}
	})
	return func() result {
		t.Helper()
		if waited {
			return r
		}
		waited = true
		err := <-done
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			r.code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("lantern %q: %v", args, err)
		}
		r.stdout, r.stderr = out.String(), errb.String()
		return r
	}
}

// TestRebuildUsage: a wrong command line exits 2 and says what to fix,
// before anything is fetched, signed or posted.
func TestRebuildUsage(t *testing.T) {
	dir := t.TempDir()
	pw := []string{"LANTERN_PASSWORD="}
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "ci").must(t, "keygen")
	putFile(t, dir, "spec.json", `{"image": "registry.example/builder@sha256:`+strings.Repeat("a", 64)+`", "commands": ["true"], "outputs": {"x": "x"}}`)
	var posted atomic.Int32
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posted.Add(1) }))
	defer farm.Close()
	given := []string{"--farm", farm.URL, "--key", "ci.key"}
	empty := "LANTERN_DATA=" + filepath.Join(dir, "no-up-here")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no source", nil, []string{"rebuild"}, "rebuild takes one NAME@VERSION"},
		{"two sources", nil, []string{"rebuild", "a@v1.0.0", "b@v1.0.0"}, "got 2 arguments"},
		{"no version", nil, []string{"rebuild", "golang.org/x/tools/cmd/stringer"}, "want NAME@VERSION"},
		{"a negative wait", nil, []string{"rebuild", "a.example/b@v1.0.0", "--wait", "-1m"}, "--wait -1m0s: want a positive duration"},
		{"a bad wait", nil, []string{"rebuild", "a.example/b@v1.0.0", "--wait", "soon"}, "invalid value \"soon\" for flag -wait"},
		{"fetch without build", nil, []string{"rebuild", "hello@1.0", "--fetch", "https://example.org/hello.tar.gz"}, "needs both --fetch URL and --build"},
		{"build without fetch", nil, []string{"rebuild", "hello@1.0", "--build", "spec.json"}, "needs both --fetch URL and --build"},
		{"plain http", nil, []string{"rebuild", "hello@1.0", "--fetch", "http://example.org/hello.tar.gz", "--build", "spec.json"}, "or --allow-http-fetch"},
		{"not a URL", nil, []string{"rebuild", "hello@1.0", "--fetch", "file:///etc/passwd", "--build", "spec.json"}, "want the tarball's https URL"},
		{"no farm and no lantern up", []string{empty}, []string{"rebuild", "a.example/b@v1.0.0"}, "no farm: give --farm URL"},
		{"a farm that is no URL", nil, []string{"rebuild", "a.example/b@v1.0.0", "--farm", "farm.example"}, "--farm \"farm.example\": want the farm's API URL"},
		{"no key and no lantern up", []string{empty}, []string{"rebuild", "a.example/b@v1.0.0", "--farm", farm.URL}, "no claim key: give --key FILE"},
		{"a tarball's name without --fetch", pw, append([]string{"rebuild", "hello@1.0"}, given...), "a tarball is claimed with --fetch URL --build SPEC.json"},
		{"a branch", pw, append([]string{"rebuild", "golang.org/x/tools/cmd/stringer@master"}, given...), "want a full semantic version"},
		// Asked of the real proxy: no module holds the package.
		{"no such package", pw, append([]string{"rebuild", "golang.org/x/tools/cmd/no-such-command@v0.30.0"}, given...), "its v0.30.0 has no package cmd/no-such-command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runLantern(t, dir, tc.env, tc.args...).fails(t, strings.Join(tc.args, " "), 2, tc.want)
		})
	}
	if n := posted.Load(); n != 0 {
		t.Errorf("wrong command lines made %d requests to the farm, want none", n)
	}
}

// TestRebuildTamperedZip: a module proxy that serves a zip with one file
// changed is caught by the real checksum database, and nothing is signed,
// written or posted.
func TestRebuildTamperedZip(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command("go", "mod", "download", "-json", "golang.org/x/tools@v0.30.0").Output()
	if err != nil {
		t.Fatalf("go mod download: %v", err)
	}
	var dl struct{ Zip string }
	if err := json.Unmarshal(out, &dl); err != nil {
		t.Fatal(err)
	}
	// The real zip, with stringer's main file doing something else: a
	// well-formed module zip of the same files.
	zr, err := zip.OpenReader(dl.Zip)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var tampered bytes.Buffer
	zw := zip.NewWriter(&tampered)
	changed := false
	for _, f := range zr.File {
		if f.Name != "golang.org/x/tools@v0.30.0/cmd/stringer/stringer.go" {
			if err := zw.Copy(f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("package main\n\nfunc main() { println(\"owned\") }\n"))
		changed = true
	}
	zw.Close()
	if !changed {
		t.Fatal("the zip has no cmd/stringer/stringer.go to change")
	}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/golang.org/x/tools/@v/v0.30.0.info":
			w.Write([]byte(`{"Version":"v0.30.0","Time":"2025-02-04T19:03:22Z"}`))
		case "/golang.org/x/tools/@v/v0.30.0.zip":
			w.Write(tampered.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	defer proxy.Close()
	var posted atomic.Int32
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posted.Add(1) }))
	defer farm.Close()

	pw := []string{"LANTERN_PASSWORD="}
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "ci").must(t, "keygen")
	claim := filepath.Join(dir, "stringer.claim.json")
	// sum.golang.org itself, through proxy.golang.org, as the go command
	// reaches it.
	sumdb := "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8 https://proxy.golang.org/sumdb/sum.golang.org"
	r := runLantern(t, dir, pw, "rebuild", "golang.org/x/tools/cmd/stringer@v0.30.0", "--goproxy", proxy.URL, "--gosumdb", sumdb,
		"--farm", farm.URL, "--key", "ci.key", "--data", filepath.Join(dir, "data"), "-o", claim, "--wait", "1m")
	r.fails(t, "rebuild from a proxy with a tampered zip", 1, "digest mismatch: its hash is h1:")
	if !strings.Contains(r.stderr, "the checksum database records h1:") {
		t.Errorf("rebuild's error %q does not say what the checksum database records", r.stderr)
	}
	if _, err := os.Stat(claim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rebuild wrote a claim of a tampered zip (stat: %v)", err)
	}
	if n := posted.Load(); n != 0 {
		t.Errorf("rebuild made %d requests to the farm with a tampered zip, want none", n)
	}
}

// TestRebuildTarball: a tarball's claim names the sha256 of what rebuild
// downloaded itself, with the generic recipe and the spec; it is written
// (-o) before it is posted, and a farm that refuses it fails the command.
func TestRebuildTarball(t *testing.T) {
	dir := t.TempDir()
	tarball := []byte("not really a tarball, but bytes to hash\n")
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(tarball) }))
	defer files.Close()
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error": "the farm is closed", "fix": "come back later"}`, http.StatusServiceUnavailable)
	}))
	defer farm.Close()
	pw := []string{"LANTERN_PASSWORD="}
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "ci").must(t, "keygen")
	putFile(t, dir, "spec.json", `{"image": "registry.example/builder@sha256:`+strings.Repeat("a", 64)+`", "commands": ["make"], "outputs": {"hello": "hello"}}`)

	r := runLantern(t, dir, pw, "rebuild", "example.org/hello@1.0", "--fetch", files.URL+"/hello-1.0.tar.gz", "--allow-http-fetch",
		"--build", "spec.json", "--farm", farm.URL, "--key", "ci.key", "-o", "hello.claim.json")
	r.fails(t, "rebuild posted to a farm that refuses", 1, "the farm is closed")
	v := runLantern(t, dir, nil, "claim", "verify", "--json", "--key", "ci.pub", "hello.claim.json").must(t, "claim verify")
	var got struct {
		Claim struct {
			Source        struct{ Name, Version, Digest string }
			Fetch, Recipe string
			Build         struct{ Commands []string }
		}
	}
	if err := json.Unmarshal([]byte(v.stdout), &got); err != nil {
		t.Fatalf("claim verify --json: %v\n%s", err, v.stdout)
	}
	c := got.Claim
	if c.Source.Name != "example.org/hello" || c.Source.Version != "1.0" || c.Source.Digest != "sha256:"+sha256hex(string(tarball)) ||
		c.Fetch != files.URL+"/hello-1.0.tar.gz" || c.Recipe != "generic" || len(c.Build.Commands) != 1 {
		t.Errorf("rebuild's claim = %+v, want the tarball's sha256, its URL, the generic recipe and the spec", c)
	}
}

// TestRebuildFarmNamesAnotherJob: the job rebuild waits for is the one its
// claim makes, whatever the farm answers to the post: a farm that names
// another job, reproduced already (another claim of the name, another Go
// release or platform), cannot have its verdict stand for this claim's.
func TestRebuildFarmNamesAnotherJob(t *testing.T) {
	dir := t.TempDir()
	tarball := []byte("the tarball\n")
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(tarball) }))
	defer files.Close()
	const other = "j0123456789abcdef0123456789abcdef"
	b1 := "sha256:" + sha256hex("builder 1")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/claims", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"job": "` + other + `"}`))
	})
	mux.HandleFunc("GET /api/v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"created": "2026-11-30T10:00:00Z", "builders": {"` + b1 + `": {"state": "done", "updated": "2026-11-30T10:01:00Z"}}}`))
	})
	mux.HandleFunc("GET /api/v1/sources/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"verdicts": [{"source": {"name": "example.org/hello", "version": "1.0", "digest": "sha256:` + sha256hex(string(tarball)) + `"},
			"label": "hello", "job": "` + other + `", "status": "reproduced", "threshold": 1,
			"groups": [{"output": "sha256:` + sha256hex("out") + `", "builders": ["` + b1 + `"]}]}]}`))
	})
	farm := httptest.NewServer(mux)
	defer farm.Close()
	pw := []string{"LANTERN_PASSWORD="}
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "ci").must(t, "keygen")
	putFile(t, dir, "spec.json", `{"image": "registry.example/builder@sha256:`+strings.Repeat("a", 64)+`", "commands": ["make"], "outputs": {"hello": "hello"}}`)
	r := runLantern(t, dir, pw, "rebuild", "example.org/hello@1.0", "--fetch", files.URL+"/hello-1.0.tar.gz", "--allow-http-fetch",
		"--build", "spec.json", "--farm", farm.URL, "--key", "ci.key", "--wait", "1m")
	r.fails(t, "rebuild, the farm naming another job", 1, "not this claim's job")
}
