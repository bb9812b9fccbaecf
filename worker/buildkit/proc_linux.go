package buildkit

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sysProcAttr puts buildkitd in a process group of its own, so that a kill
// reaches the runc processes it started too, and has the kernel send it
// SIGTERM if this process dies without calling Close (a test killed by its
// timeout, say).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

func terminate(p *os.Process) { p.Signal(syscall.SIGTERM) }

// kill ends p's whole process group. p must not have been reaped yet.
func kill(p *os.Process) {
	syscall.Kill(-p.Pid, syscall.SIGKILL)
	p.Kill()
}

// unmountUnder detaches every mount below dir: a buildkitd that was killed
// leaves its snapshots mounted, and the directory could not be removed.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	prefix := filepath.Clean(dir) + "/"
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// Field 5 is the mount point, with spaces and the like octal-escaped.
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		if p := unescapeMountPoint(fields[4]); strings.HasPrefix(p, prefix) {
			points = append(points, p)
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	// The deepest first: mountinfo lists parents before their children.
	slices.Reverse(points)
	var first error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT && first == nil {
			first = &os.PathError{Op: "unmount", Path: p, Err: err}
		}
	}
	return first
}

// unescapeMountPoint undoes mountinfo's \ooo escapes.
func unescapeMountPoint(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			o := s[i+1 : i+4]
			if o[0] >= '0' && o[0] <= '3' && o[1] >= '0' && o[1] <= '7' && o[2] >= '0' && o[2] <= '7' {
				b.WriteByte((o[0]-'0')<<6 | (o[1]-'0')<<3 | (o[2] - '0'))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// container is a line of 'runc list --format json'.
type container struct {
	ID     string `json:"id"`
	Bundle string `json:"bundle"`
}

// containersUnder lists the runc containers (in runc's default state
// directory, which buildkitd's OCI worker uses) whose bundles lie below dir:
// the build steps of the daemon that keeps its state there.
func containersUnder(runc, dir string) []container {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, runc, "list", "--format", "json").Output()
	if err != nil {
		return nil
	}
	var all []container
	if json.Unmarshal(out, &all) != nil {
		return nil
	}
	prefix := filepath.Clean(dir) + "/"
	var mine []container
	for _, c := range all {
		if strings.HasPrefix(c.Bundle, prefix) {
			mine = append(mine, c)
		}
	}
	return mine
}

// killContainers sends SIGKILL to the build steps running under dir. Each
// has a PID namespace of its own: killing its first process ends them all.
func killContainers(runc, dir string) {
	for _, c := range containersUnder(runc, dir) {
		runcDo(runc, "kill", c.ID, "KILL")
	}
}

// removeContainers kills and deletes the containers under dir, which a
// buildkitd that exited in the middle of a build leaves behind.
func removeContainers(runc, dir string) {
	for _, c := range containersUnder(runc, dir) {
		runcDo(runc, "delete", "--force", c.ID)
	}
}

func runcDo(runc string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exec.CommandContext(ctx, runc, args...).Run()
}
