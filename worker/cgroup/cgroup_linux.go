package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// removeWait bounds how long Close waits for the cgroups below a group to
// empty: the processes of a killed step take a moment to exit, and runc to
// remove the step's cgroup.
const removeWait = 10 * time.Second

// Group is a cgroup made by New, holding its caps until Close.
type Group struct {
	name    string
	root    string
	limits  Limits
	v2      bool
	memDir  string // the group's directory in the memory hierarchy
	pidsDir string // in the pids hierarchy (the same on v2)

	// v1: an eventfd the kernel signals at every OOM in the group, and the
	// memory.oom_control file it is registered on, open while it is.
	oomFD   int
	oomCtl  *os.File
	oomSeen bool
}

// New makes the cgroup name (such as "lantern/0123abcd", below the root of
// each hierarchy) with the caps l. Its errors wrap ErrUnavailable where the
// machine or the process cannot make one.
func New(name string, l Limits) (*Group, error) {
	return newAt(Root, name, l)
}

func newAt(root, name string, l Limits) (*Group, error) {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "..") {
		return nil, fmt.Errorf("cgroup %q: want a clean relative path such as lantern/ID", name)
	}
	if l.Memory < 0 || l.Processes < 0 {
		return nil, fmt.Errorf("cgroup %s: caps %+v: want 0 (none) or more", name, l)
	}
	g := &Group{name: name, root: root, limits: l, oomFD: -1}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		g.v2 = true
		g.memDir = filepath.Join(root, filepath.FromSlash(name))
		g.pidsDir = g.memDir
	} else {
		for _, c := range []string{"memory", "pids"} {
			if _, err := os.Stat(filepath.Join(root, c, "cgroup.procs")); err != nil {
				return nil, fmt.Errorf("%w: neither cgroup v2 at %s nor the cgroup v1 %s controller at %s", ErrUnavailable, root, c, filepath.Join(root, c))
			}
		}
		g.memDir = filepath.Join(root, "memory", filepath.FromSlash(name))
		g.pidsDir = filepath.Join(root, "pids", filepath.FromSlash(name))
	}
	var err error
	if g.v2 {
		err = g.makeV2()
	} else {
		err = g.makeV1()
	}
	if err != nil {
		g.Close()
		if errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w: %w (make cgroups as root)", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	return g, nil
}

func (g *Group) makeV1() error {
	for _, d := range []string{g.memDir, g.pidsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Kernels before 5.x could have a memory hierarchy that is not one:
	// a parent's limit would not bind its children.
	if b, err := os.ReadFile(filepath.Join(g.memDir, "memory.use_hierarchy")); err == nil && strings.TrimSpace(string(b)) != "1" {
		return fmt.Errorf("%w: memory.use_hierarchy is %q: the group's cap would not bind the step below it", ErrUnavailable, strings.TrimSpace(string(b)))
	}
	if m := g.limits.Memory; m > 0 {
		if err := write(g.memDir, "memory.limit_in_bytes", m); err != nil {
			return err
		}
		// With swap accounting, memory and swap together; else swap is
		// not capped (nor, on a machine without swap, used).
		if exists(filepath.Join(g.memDir, "memory.memsw.limit_in_bytes")) {
			if err := write(g.memDir, "memory.memsw.limit_in_bytes", m); err != nil {
				return err
			}
		}
	}
	if p := g.limits.Processes; p > 0 {
		if err := write(g.pidsDir, "pids.max", p); err != nil {
			return err
		}
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	g.oomFD = fd
	if g.oomCtl, err = os.Open(filepath.Join(g.memDir, "memory.oom_control")); err != nil {
		return err
	}
	return writeString(filepath.Join(g.memDir, "cgroup.event_control"), fmt.Sprintf("%d %d", g.oomFD, g.oomCtl.Fd()))
}

func (g *Group) makeV2() error {
	if err := os.MkdirAll(g.memDir, 0o755); err != nil {
		return err
	}
	// The controllers must be on in every cgroup from the root down to the
	// group (for the group's files) and in the group (for the step's).
	dir := g.root
	for _, elem := range append([]string{""}, strings.Split(g.name, "/")...) {
		dir = filepath.Join(dir, elem)
		if err := writeString(filepath.Join(dir, "cgroup.subtree_control"), "+memory +pids"); err != nil {
			return fmt.Errorf("%w: enable the memory and pids controllers in %s: %w", ErrUnavailable, dir, err)
		}
	}
	if m := g.limits.Memory; m > 0 {
		if err := write(g.memDir, "memory.max", m); err != nil {
			return err
		}
		if exists(filepath.Join(g.memDir, "memory.swap.max")) {
			if err := write(g.memDir, "memory.swap.max", 0); err != nil {
				return err
			}
		}
		// One OOM kill takes the whole build, not one of its processes.
		if exists(filepath.Join(g.memDir, "memory.oom.group")) {
			if err := write(g.memDir, "memory.oom.group", 1); err != nil {
				return err
			}
		}
	}
	if p := g.limits.Processes; p > 0 {
		if err := write(g.pidsDir, "pids.max", p); err != nil {
			return err
		}
	}
	return nil
}

// Name returns the group's name, for llb.WithCgroupParent.
func (g *Group) Name() string { return g.name }

// Limits returns the group's caps.
func (g *Group) Limits() Limits { return g.limits }

// Passed reports which caps the group's processes have passed so far. Once
// passed, a cap stays passed.
func (g *Group) Passed() (Passed, error) {
	var p Passed
	if g.limits.Memory > 0 {
		m, err := g.memoryPassed()
		if err != nil {
			return p, fmt.Errorf("cgroup %s: %w", g.name, err)
		}
		p.Memory = m
	}
	if g.limits.Processes > 0 {
		n, err := g.processesPassed()
		if err != nil {
			return p, fmt.Errorf("cgroup %s: %w", g.name, err)
		}
		p.Processes = n
	}
	return p, nil
}

func (g *Group) memoryPassed() (bool, error) {
	if !g.v2 {
		if !g.oomSeen {
			var b [8]byte
			n, err := unix.Read(g.oomFD, b[:])
			switch {
			case errors.Is(err, unix.EAGAIN):
			case err != nil:
				return false, fmt.Errorf("read OOM events: %w", err)
			case n == 8:
				g.oomSeen = true
			}
		}
		return g.oomSeen, nil
	}
	ev, err := readKeyed(filepath.Join(g.memDir, "memory.events"))
	if err != nil {
		return false, err
	}
	return ev["oom"] > 0 || ev["oom_kill"] > 0, nil
}

func (g *Group) processesPassed() (bool, error) {
	cur, err := readInt(filepath.Join(g.pidsDir, "pids.current"))
	if err != nil {
		return false, err
	}
	if cur >= g.limits.Processes {
		return true, nil
	}
	failed := false
	err = walkGroups(g.pidsDir, func(dir string) error {
		ev, err := readKeyed(filepath.Join(dir, "pids.events"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		if ev["max"] > 0 {
			failed = true
			return filepath.SkipAll
		}
		return nil
	})
	return failed, err
}

// Processes returns the ids of the processes in the group and below it.
func (g *Group) Processes() ([]int, error) {
	var pids []int
	err := walkGroups(g.pidsDir, func(dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", g.name, err)
	}
	return pids, nil
}

// Used reports whether any process has used memory in the group since New:
// whether the step ran in it at all. A buildkitd on another machine, or in
// a container of its own, makes the step's cgroup somewhere else, and the
// caps would not hold.
func (g *Group) Used() (bool, error) {
	file := "memory.max_usage_in_bytes"
	if g.v2 {
		file = "memory.peak" // Linux 5.19
		if !exists(filepath.Join(g.memDir, file)) {
			return true, nil // cannot tell
		}
	}
	n, err := readInt(filepath.Join(g.memDir, file))
	if err != nil {
		return false, fmt.Errorf("cgroup %s: %w", g.name, err)
	}
	return n > 0, nil
}

// Close removes the group, and the cgroups below it that runc made (in
// every hierarchy, on v1), waiting a while for their processes to exit.
func (g *Group) Close() error {
	if g.oomFD >= 0 {
		unix.Close(g.oomFD)
		g.oomFD = -1
	}
	if g.oomCtl != nil {
		g.oomCtl.Close()
		g.oomCtl = nil
	}
	dirs := []string{g.memDir}
	if !g.v2 {
		dirs = hierarchyDirs(g.root, g.name)
	}
	var errs []error
	for _, d := range dirs {
		if err := removeTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", g.name, err)
	}
	return nil
}

// hierarchyDirs returns name's directory in each v1 hierarchy mounted under
// root, once each (Debian links cpu and cpuacct to cpu,cpuacct).
func hierarchyDirs(root, name string) []string {
	entries, _ := os.ReadDir(root)
	seen := map[string]bool{}
	var dirs []string
	for _, e := range entries {
		h, err := filepath.EvalSymlinks(filepath.Join(root, e.Name()))
		if err != nil || seen[h] {
			continue
		}
		seen[h] = true
		if fi, err := os.Stat(h); err == nil && fi.IsDir() {
			dirs = append(dirs, filepath.Join(h, filepath.FromSlash(name)))
		}
	}
	return dirs
}

// removeTree removes the cgroup dir and those below it, deepest first,
// trying again while they still hold processes.
func removeTree(dir string) error {
	deadline := time.Now().Add(removeWait)
	for {
		var dirs []string
		err := walkGroups(dir, func(d string) error {
			dirs = append(dirs, d)
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var busy error
		for i := len(dirs) - 1; i >= 0; i-- {
			// A cgroup's files cannot be removed; rmdir removes it whole.
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				busy = fmt.Errorf("%s: %w", dirs[i], err)
			}
		}
		if busy == nil {
			return nil
		}
		if !errors.Is(busy, syscall.EBUSY) || time.Now().After(deadline) {
			return busy
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// walkGroups calls fn for dir and each cgroup below it, parents first.
func walkGroups(dir string, fn func(dir string) error) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		return fn(p)
	})
}

func exists(file string) bool {
	_, err := os.Stat(file)
	return err == nil
}

func write(dir, file string, v int64) error {
	return writeString(filepath.Join(dir, file), strconv.FormatInt(v, 10))
}

// writeString writes s to a cgroup file, which exists: a cgroup file
// system makes no files.
func writeString(file, s string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", s, file, err)
	}
	return nil
}

func readInt(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q: want a number", file, s)
	}
	return n, nil
}

// readKeyed reads a flat keyed file ("key value" lines), such as
// memory.events or pids.events.
func readKeyed(file string) (map[string]int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, nil
}
