package cgroup

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGroupOnThisMachine makes a real group with caps and removes it. The
// caps holding against a running build step are tested in package worker
// (TestBuildCaps), with a real buildkitd.
func TestGroupOnThisMachine(t *testing.T) {
	g, err := New("lantern/test-"+strings.ToLower(rand.Text()[:12]), Limits{Memory: 64 << 20, Processes: 64})
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("New = %v; CI runs as root on a machine with cgroups", err)
		}
		t.Skip(err)
	}
	dirs := []string{g.memDir, g.pidsDir}
	want := map[string]string{"pids.max": "64"}
	if g.v2 {
		want["memory.max"] = "67108864"
	} else {
		want["memory.limit_in_bytes"] = "67108864"
	}
	for file, v := range want {
		dir := g.pidsDir
		if strings.HasPrefix(file, "memory") {
			dir = g.memDir
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || strings.TrimSpace(string(b)) != v {
			t.Errorf("%s = %q, %v; want %s", file, b, err, v)
		}
	}
	if p, err := g.Passed(); err != nil || p != (Passed{}) {
		t.Errorf("Passed() = %+v, %v; want none, nothing has run", p, err)
	}
	if pids, err := g.Processes(); err != nil || len(pids) != 0 {
		t.Errorf("Processes() = %v, %v; want none", pids, err)
	}
	if used, err := g.Used(); err != nil || used {
		t.Errorf("Used() = %v, %v; want false", used, err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s after Close: %v, want it removed", d, err)
		}
	}
}

// TestGroupV2 follows a group's files on a fake cgroup v2 tree: this
// package's tests run on a cgroup v1 machine, where TestGroupOnThisMachine
// and package worker's TestBuildCaps test the real thing.
func TestGroupV2(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"cgroup.controllers":                            "cpu memory pids",
		"cgroup.subtree_control":                        "",
		"lantern/cgroup.subtree_control":                "",
		"lantern/b1/cgroup.subtree_control":             "",
		"lantern/b1/memory.max":                         "max",
		"lantern/b1/memory.swap.max":                    "max",
		"lantern/b1/memory.oom.group":                   "0",
		"lantern/b1/memory.events":                      "low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n",
		"lantern/b1/memory.peak":                        "0",
		"lantern/b1/pids.max":                           "max",
		"lantern/b1/pids.current":                       "0",
		"lantern/b1/pids.events":                        "max 0\n",
		"lantern/b1/buildkit/c1/pids.events":            "max 0\n",
		"lantern/b1/buildkit/c1/cgroup.procs":           "41\n42\n",
		"lantern/b1/buildkit/cgroup.procs":              "",
		"lantern/b1/cgroup.procs":                       "",
		"lantern/b1/buildkit/c1/cgroup.subtree_control": "",
	}
	put := func(name, s string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range files {
		put(name, s)
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		return string(b)
	}
	g, err := newAt(root, "lantern/b1", Limits{Memory: 1 << 20, Processes: 10})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"cgroup.subtree_control":            "+memory +pids",
		"lantern/cgroup.subtree_control":    "+memory +pids",
		"lantern/b1/cgroup.subtree_control": "+memory +pids",
		"lantern/b1/memory.max":             "1048576",
		"lantern/b1/memory.swap.max":        "0",
		"lantern/b1/memory.oom.group":       "1",
		"lantern/b1/pids.max":               "10",
	} {
		if got := read(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if pids, err := g.Processes(); err != nil || len(pids) != 2 || pids[0] != 41 || pids[1] != 42 {
		t.Errorf("Processes() = %v, %v; want [41 42]", pids, err)
	}
	// "max" counts the times usage met memory.max and was reclaimed: no OOM.
	if p, err := g.Passed(); err != nil || p != (Passed{}) {
		t.Errorf("Passed() = %+v, %v; want none", p, err)
	}
	for _, tc := range []struct {
		name, file, content string
		want                Passed
	}{
		{"oom", "lantern/b1/memory.events", "max 9\noom 1\noom_kill 0\n", Passed{Memory: true}},
		{"oom kill", "lantern/b1/memory.events", "max 9\noom 0\noom_kill 2\n", Passed{Memory: true}},
		{"at the process cap", "lantern/b1/pids.current", "10\n", Passed{Processes: true}},
		{"a fork failed below", "lantern/b1/buildkit/c1/pids.events", "max 1\n", Passed{Processes: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := read(tc.file)
			put(tc.file, tc.content)
			defer put(tc.file, old)
			if p, err := g.Passed(); err != nil || p != tc.want {
				t.Errorf("Passed() = %+v, %v; want %+v", p, err, tc.want)
			}
		})
	}
}
