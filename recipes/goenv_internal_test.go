package recipes

import (
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestProxyOnly(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"https://proxy.golang.org,direct", "https://proxy.golang.org", ""},
		{"https://proxy.golang.org", "https://proxy.golang.org", ""},
		{"https://a.example|direct,https://b.example", "https://a.example|https://b.example", ""},
		{"https://a.example,https://b.example|direct", "https://a.example,https://b.example", ""},
		{" direct , https://a.example ", "https://a.example", ""},
		{"https://a.example,off", "https://a.example,off", ""},
		{"offline.example.com", "offline.example.com", ""},
		{"direct", "", "names no proxy"},
		{"direct,off", "", "names no proxy"},
		{"off", "", "names no proxy"},
		{"", "", "names no proxy"},
	} {
		got, err := proxyOnly(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("proxyOnly(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestHostGoStaysOnTheProxy runs the real go command as PrepareGo does, in
// a process environment that tries to send it elsewhere: GOPROXY falling
// back to "direct", modules declared private (no proxy, no checksum
// database), every version-control tool allowed, and version-control tools
// on the PATH that record being run. The proxy, an empty file GOPROXY, has
// no module: the download fails, and no tool runs. Nothing of the process's
// own environment but what the go command needs reaches it.
func TestHostGoStaysOnTheProxy(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go recipe needs the go command: %v", err)
	}
	tools, ran := t.TempDir(), filepath.Join(t.TempDir(), "ran")
	for _, tool := range []string{"git", "hg", "svn", "bzr", "fossil"} {
		script := "#!/bin/sh\necho \"$0 $*\" >> " + ran + "\nexit 1\n"
		if err := os.WriteFile(filepath.Join(tools, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	proxy := t.TempDir()
	t.Setenv("PATH", tools+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("GOPROXY", "file://"+proxy+",direct")
	t.Setenv("GOPRIVATE", "github.com/lanternfarm-test")
	t.Setenv("GONOPROXY", "github.com/lanternfarm-test")
	t.Setenv("GONOSUMDB", "github.com/lanternfarm-test")
	t.Setenv("GOINSECURE", "github.com/lanternfarm-test")
	t.Setenv("GOVCS", "*:all")
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOTOOLCHAIN", "auto")
	t.Setenv("LANTERN_PASSWORD", "hunter2-secret")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "hunter2-secret")

	p := &preparer{goCmd: goCmd, modCache: t.TempDir(), work: t.TempDir(), log: slog.New(slog.DiscardHandler)}
	if err := p.readHostEnv(t.Context()); err != nil {
		t.Fatalf("readHostEnv: %v", err)
	}
	if got, want := p.hostEnv["GOPROXY"], "file://"+proxy; got != want {
		t.Errorf("GOPROXY = %q, want %q: the proxy without direct", got, want)
	}
	for _, kv := range p.hostGoEnv() {
		if strings.Contains(kv, "hunter2") || strings.HasPrefix(kv, "LANTERN_") {
			t.Errorf("the go command's environment has %q", kv)
		}
	}
	out, err := p.runHostGo(t.Context(), "env", "-json", "GOPROXY", "GOVCS", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOINSECURE", "GOFLAGS", "GOTOOLCHAIN")
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"GOPROXY": "file://" + proxy, "GOVCS": "*:off", "GOPRIVATE": "", "GONOPROXY": "", "GONOSUMDB": "",
		"GOINSECURE": "", "GOFLAGS": "-modcacherw", "GOTOOLCHAIN": "local"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("the go command's %s = %q, want %q", k, env[k], v)
		}
	}

	if _, err := p.download(t.Context(), "github.com/lanternfarm-test/nothing@v1.0.0"); err == nil {
		t.Errorf("download of a module the proxy does not have: no error")
	}
	if b, err := os.ReadFile(ran); err == nil {
		t.Errorf("the go command ran version-control tools:\n%s", b)
	}

	// A proxy list with nothing but direct is refused, saying why.
	t.Setenv("GOPROXY", "direct")
	p = &preparer{goCmd: goCmd, modCache: t.TempDir(), work: t.TempDir(), log: slog.New(slog.DiscardHandler)}
	if err := p.readHostEnv(t.Context()); err == nil || !strings.Contains(err.Error(), "names no proxy") {
		t.Errorf("readHostEnv with GOPROXY=direct = %v, want it refused", err)
	}
}
