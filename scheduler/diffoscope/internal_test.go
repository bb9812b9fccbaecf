package diffoscope

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFindCgroups: where each run's cgroup goes, on the kinds of host the
// scheduler meets: v1 hierarchies beside an empty v2 (this test machine),
// a v2 that delegates memory and pids, one that does not, and a container
// whose mounts show only its own part of the hierarchy.
func TestFindCgroups(t *testing.T) {
	v2 := t.TempDir()
	for dir, controllers := range map[string]string{
		"":                                       "cpu memory pids",
		"system.slice/lantern.service":           "cpu memory pids",
		"system.slice/lantern.service/scheduler": "",
		"user.slice":                             "cpu",
		"user.slice/session-1.scope":             "",
	} {
		os.MkdirAll(filepath.Join(v2, dir), 0o755)
		os.WriteFile(filepath.Join(v2, dir, "cgroup.subtree_control"), []byte(controllers+"\n"), 0o644)
	}
	hybrid := `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	tests := []struct {
		name, mountinfo, self string
		want                  []string
		wantV2                bool
		wantErr               string
	}{
		{"v1 beside an empty v2", hybrid, "8:pids:/\n4:memory:/process_api/7e67\n2:cpu,cpuacct:/\n0::/\n",
			[]string{"/sys/fs/cgroup/memory/process_api/7e67", "/sys/fs/cgroup/pids"}, false, ""},
		{"v1 in a container", "34 30 0:31 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n38 30 0:35 /docker/abc /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids\n",
			"8:pids:/docker/abc\n4:memory:/docker/abc/sub\n", []string{"/sys/fs/cgroup/memory/sub", "/sys/fs/cgroup/pids"}, false, ""},
		{"v2 delegated", "40 30 0:37 / " + v2 + " rw - cgroup2 cgroup2 rw\n", "0::/system.slice/lantern.service/scheduler\n",
			[]string{filepath.Join(v2, "system.slice/lantern.service")}, true, ""},
		{"v2 at the root", "40 30 0:37 / " + v2 + " rw - cgroup2 cgroup2 rw\n", "0::/\n", []string{v2}, true, ""},
		{"v2 not delegated", "40 30 0:37 / " + v2 + " rw - cgroup2 cgroup2 rw\n", "0::/user.slice/session-1.scope\n",
			nil, false, "Delegate=memory pids"},
		{"no cgroups", "22 1 0:21 / /proc rw - proc proc rw\n", "0::/\n", nil, false, "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotV2, err := findCgroups([]byte(tt.mountinfo), []byte(tt.self))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoCgroup) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("findCgroups = %v, %v, want %v saying %q", got, err, ErrNoCgroup, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) || gotV2 != tt.wantV2 {
				t.Errorf("findCgroups = %q, v2 %v, %v; want %q, v2 %v", got, gotV2, err, tt.want, tt.wantV2)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/mnt/with\040space\134x`); got != `/mnt/with space\x` {
		t.Errorf("unescapeMount = %q", got)
	}
}

// TestWatch: the line that says a run's tmpfs was full is seen however the
// writes split it, and past what the capped stderr keeps.
func TestWatch(t *testing.T) {
	line := "gzip: stdout: No space left on device\n"
	for split := range len(line) {
		var kept strings.Builder
		w := &watch{want: []byte("No space left on device"), w: &kept}
		w.Write([]byte(strings.Repeat("x", 100<<10)))
		w.Write([]byte(line[:split]))
		w.Write([]byte(line[split:]))
		if !w.seen || kept.Len() != 100<<10+len(line) {
			t.Errorf("split at %d: seen %v, passed on %d bytes", split, w.seen, kept.Len())
		}
	}
	w := &watch{want: []byte("No space left on device"), w: io.Discard}
	w.Write([]byte("No space left on dev"))
	w.Write([]byte("ice is not what this says"))
	if !w.seen {
		t.Errorf("not seen across writes")
	}
	w = &watch{want: []byte("No space left on device"), w: io.Discard}
	w.Write([]byte("No space left on"))
	w.Write([]byte(" the device"))
	if w.seen {
		t.Errorf("seen in %q", "No space left on the device")
	}
}
