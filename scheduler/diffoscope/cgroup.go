package diffoscope

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoCgroup reports that no control group can cap diffoscope's memory
// and processes.
var ErrNoCgroup = errors.New("no cgroup with the memory and pids controllers to cap diffoscope in")

// A cgroup holds one run of diffoscope: every process of its sandbox, so
// that their memory (the scratch tmpfs's pages included: they are charged
// to the cgroup of the process that writes them) and their number are
// capped together, the kernel says afterwards whether a cap was hit, and
// whatever is left can be killed. RLIMIT_AS would cap each process alone
// and RLIMIT_NPROC binds neither root nor a count per run.
type cgroup struct {
	// dirs are its directories: v1 one per hierarchy (memory, pids), v2 one.
	dirs []string
	v2   bool
}

// cgroupMount is a cgroup file system mounted at dir, showing the
// hierarchy from root down; v2 for cgroup2, else the v1 controllers in it.
type cgroupMount struct {
	dir, root   string
	v2          bool
	controllers []string
}

// findCgroups returns where to make diffoscope's cgroups: under this
// process's own cgroup, so that whatever caps the scheduler caps them too.
// It prefers v1 hierarchies of memory and pids (a hybrid host mounts an
// empty v2 beside them), else the v2 one when this process's cgroup or its
// parent delegates both controllers to its children.
func findCgroups(mountinfo, self []byte) (parents []string, v2 bool, err error) {
	mounts := parseMountinfo(mountinfo)
	own := parseProcCgroup(self) // controller ("" for v2) → path
	var v1 []string
	for _, c := range []string{"memory", "pids"} {
		for _, m := range mounts {
			if !m.v2 && slices.Contains(m.controllers, c) {
				if p, ok := own[c]; ok {
					v1 = append(v1, under(m, p))
					break
				}
			}
		}
	}
	if len(v1) == 2 {
		return v1, false, nil
	}
	for _, m := range mounts {
		p, ok := own[""]
		if !ok || !m.v2 {
			continue
		}
		// A v2 cgroup with processes cannot have children with
		// controllers (but the root), so a run's cgroup goes beside this
		// process's: under its parent, when that delegates both.
		var seen []string
		for _, dir := range []string{under(m, p), under(m, filepath.Dir(p))} {
			sub, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
			if err != nil {
				return nil, false, fmt.Errorf("%w: %v", ErrNoCgroup, err)
			}
			if f := strings.Fields(string(sub)); slices.Contains(f, "memory") && slices.Contains(f, "pids") {
				return []string{dir}, true, nil
			}
			seen = append(seen, fmt.Sprintf("%s has %q", filepath.Join(dir, "cgroup.subtree_control"), strings.TrimSpace(string(sub))))
			if p == "/" {
				break
			}
		}
		return nil, false, fmt.Errorf("%w: neither this process's cgroup v2 nor its parent delegates memory and pids to its children (%s); run the scheduler in a child of a cgroup that does, e.g. a systemd service with Delegate=memory pids and DelegateSubgroup=scheduler", ErrNoCgroup, strings.Join(seen, ", "))
	}
	return nil, false, fmt.Errorf("%w: neither cgroup v1 hierarchies of memory and pids nor a cgroup v2 are mounted (see /proc/self/mountinfo)", ErrNoCgroup)
}

// under is where path, a cgroup of m's hierarchy, is in the file system.
func under(m cgroupMount, path string) string {
	if m.root != "/" {
		if rest, ok := strings.CutPrefix(path, m.root); ok {
			path = rest
		} else {
			path = "/" // a cgroup namespace: the mount shows our own
		}
	}
	return filepath.Join(m.dir, path)
}

func parseMountinfo(b []byte) []cgroupMount {
	var out []cgroupMount
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// 34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		m := cgroupMount{dir: unescapeMount(f[4]), root: unescapeMount(f[3])}
		switch g[0] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			m.controllers = strings.Split(g[2], ",")
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseProcCgroup reads /proc/self/cgroup: each v1 controller, and "" for
// v2, to this process's cgroup path.
func parseProcCgroup(b []byte) map[string]string {
	out := map[string]string{}
	for line := range strings.Lines(string(b)) {
		// 4:memory:/process_api/7e67   8:pids:/   0::/system.slice/x
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// newCgroup makes a cgroup for one run under parents (from findCgroups)
// with its memory and process caps.
func newCgroup(parents []string, v2 bool, memory int64, procs int) (*cgroup, error) {
	var b [8]byte
	rand.Read(b[:])
	name := "lantern-diffoscope-" + hex.EncodeToString(b[:])
	cg := &cgroup{v2: v2}
	for _, p := range parents {
		dir := filepath.Join(p, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			cg.remove()
			return nil, fmt.Errorf("%w: %v", ErrNoCgroup, err)
		}
		cg.dirs = append(cg.dirs, dir)
	}
	memDir, pidsDir := cg.dirs[0], cg.dirs[len(cg.dirs)-1] // v1: memory, pids; v2: one
	set := [][2]string{{pidsDir, "pids.max"}, {memDir, "memory.limit_in_bytes"}}
	if v2 {
		set = [][2]string{{pidsDir, "pids.max"}, {memDir, "memory.max"}, {memDir, "memory.swap.max"}}
	}
	for _, f := range set {
		v := strconv.FormatInt(memory, 10)
		switch f[1] {
		case "pids.max":
			v = strconv.Itoa(procs)
		case "memory.swap.max":
			v = "0"
		}
		err := os.WriteFile(filepath.Join(f[0], f[1]), []byte(v), 0)
		if errors.Is(err, fs.ErrNotExist) && f[1] == "memory.swap.max" {
			continue // no swap accounting: no swap to cap
		}
		if err != nil {
			cg.remove()
			return nil, fmt.Errorf("%w: %v", ErrNoCgroup, err)
		}
	}
	return cg, nil
}

// procs are the cgroup.procs files a process writes its pid to, to join.
func (cg *cgroup) procs() []string {
	var out []string
	for _, d := range cg.dirs {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	return out
}

// hits says which caps the kernel enforced: the memory cap when it had to
// kill a process for it, the process cap when it refused a fork.
func (cg *cgroup) hits() (memory, procs bool) {
	for _, d := range cg.dirs {
		if n := counter(filepath.Join(d, "pids.events"), "max"); n > 0 {
			procs = true
		}
		if cg.v2 {
			if counter(filepath.Join(d, "memory.events"), "oom_kill") > 0 || counter(filepath.Join(d, "memory.events"), "oom") > 0 {
				memory = true
			}
		} else if counter(filepath.Join(d, "memory.oom_control"), "oom_kill") > 0 {
			memory = true
		}
	}
	return memory, procs
}

// counter reads the value of key in a flat keyed file ("oom_kill 2").
func counter(file, key string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == key {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// kill kills every process in the cgroup, until none is left.
func (cg *cgroup) kill() {
	for range 200 {
		left := false
		for _, f := range cg.procs() {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, pid := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(pid); err == nil {
					syscall.Kill(n, syscall.SIGKILL)
					left = true
				}
			}
		}
		if !left {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// remove kills what is left in the cgroup and removes it.
func (cg *cgroup) remove() error {
	cg.kill()
	var errs []error
	for _, d := range cg.dirs {
		var err error
		// A killed process leaves its cgroup a moment later (longer on a
		// loaded machine).
		for range 500 {
			if err = os.Remove(d); err == nil || errors.Is(err, fs.ErrNotExist) {
				err = nil
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
