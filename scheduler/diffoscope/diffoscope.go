// Package diffoscope runs Debian's diffoscope (https://diffoscope.org) on
// two artefacts and returns its plain-text report: what a maintainer reads
// to learn why two builders got different bytes from one source.
//
// The artefacts are a builder's bytes, and diffoscope unpacks archives,
// runs a dozen tools on what it finds and writes it all to scratch files,
// so it runs contained: in a bubblewrap sandbox (apt-get install
// bubblewrap) as an unprivileged user, with no network, no host files but
// /usr (and the few of /etc that the loader needs), its two inputs read-only,
// a size-capped tmpfs as its only writable place, and an environment of
// PATH, LANG, TMPDIR and HOME only; in a cgroup of its own that caps the
// memory and the number of processes of the whole run; under a time limit
// after which everything in that cgroup is killed; and with its report
// cut at a size. A run that hits a cap gives a *LimitError that names it.
//
// The inputs are copies of the two artefacts named a/NAME and b/NAME, so
// that a report depends on the bytes and the name only.
package diffoscope

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lanternfarm/lantern/internal/capped"
)

// ErrNotInstalled reports that no diffoscope program was found.
var ErrNotInstalled = errors.New("diffoscope is not installed")

// ErrNoSandbox reports that diffoscope's sandbox cannot be made here.
var ErrNoSandbox = errors.New("no sandbox for diffoscope")

// Install says how to install diffoscope and its sandbox.
const Install = "as root: apt-get install --no-install-recommends diffoscope-minimal bubblewrap"

// Defaults of a Differ.
const (
	DefaultTimeout   = 10 * time.Minute
	DefaultMaxReport = 4 << 20
	DefaultMaxMemory = 2 << 30
	DefaultMaxDisk   = 1 << 30
	DefaultMaxProcs  = 128
	DefaultMaxInput  = 1 << 30
	// DefaultUser is the user diffoscope runs as when the scheduler is
	// root: nobody.
	DefaultUser = 65534
)

// Differ runs diffoscope in a sandbox. Its zero caps mean the defaults.
type Differ struct {
	// Path is the diffoscope program. One outside /usr (a test's stand-in)
	// is copied into the sandbox, which sees no other host directory.
	Path string
	// Bwrap is bubblewrap's program (default bwrap on the PATH).
	Bwrap string
	// Timeout bounds one comparison (default DefaultTimeout); then every
	// process of the run is killed.
	Timeout time.Duration
	// MaxReport bounds a report's size in bytes (default DefaultMaxReport):
	// a longer one is cut, with a last line saying so.
	MaxReport int64
	// MaxMemory bounds the memory of all processes of one run together,
	// in bytes, its scratch files included: they live in memory (default
	// DefaultMaxMemory). Keep it above MaxDisk.
	MaxMemory int64
	// MaxDisk bounds the scratch space of one run (a tmpfs), in bytes
	// (default DefaultMaxDisk).
	MaxDisk int64
	// MaxProcs bounds the processes and threads of one run (default
	// DefaultMaxProcs).
	MaxProcs int
	// MaxInput bounds each of the two artefacts, in bytes, copied to the
	// scheduler's disk for diffoscope to read (default DefaultMaxInput).
	MaxInput int64
	// User is the uid diffoscope runs as when this process is root
	// (default DefaultUser).
	User int

	once    sync.Once
	initErr error
	setpriv string
	cgroups []string // parents of each run's cgroups
	cgroup2 bool
}

// Find returns a Differ running the diffoscope at path, or the one on the
// PATH when path is "", with its sandbox's parts found: bubblewrap, and a
// cgroup to cap it in.
func Find(path string) (*Differ, error) {
	name := path
	if name == "" {
		name = "diffoscope"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w (looked for %q: %v); %s", ErrNotInstalled, name, err, Install)
	}
	d := &Differ{Path: p}
	if err := d.init(); err != nil {
		return nil, err
	}
	return d, nil
}

// init finds the sandbox's parts once.
func (d *Differ) init() error {
	d.once.Do(func() {
		bw := or(d.Bwrap, "bwrap")
		p, err := exec.LookPath(bw)
		if err != nil {
			d.initErr = fmt.Errorf("%w: bubblewrap is not installed (looked for %q: %v); %s", ErrNoSandbox, bw, err, Install)
			return
		}
		d.Bwrap = p
		if os.Geteuid() == 0 {
			// setpriv (util-linux) drops root before bwrap starts.
			if d.setpriv, err = exec.LookPath("setpriv"); err != nil {
				d.initErr = fmt.Errorf("%w: no setpriv to run it as an unprivileged user (%v); as root: apt-get install util-linux", ErrNoSandbox, err)
				return
			}
		}
		mountinfo, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			d.initErr = fmt.Errorf("%w: %w", ErrNoSandbox, err)
			return
		}
		self, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			d.initErr = fmt.Errorf("%w: %w", ErrNoSandbox, err)
			return
		}
		if d.cgroups, d.cgroup2, err = findCgroups(mountinfo, self); err != nil {
			d.initErr = fmt.Errorf("%w: %w", ErrNoSandbox, err)
		}
	})
	return d.initErr
}

// Check runs diffoscope --version in the sandbox: whether diffoscope runs
// there at all, for a clear error when the scheduler starts rather than a
// failed report later.
func (d *Differ) Check(ctx context.Context) error {
	if err := d.init(); err != nil {
		return err
	}
	dir, err := d.workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out, err := d.run(ctx, dir, "", []string{"--version"})
	if err != nil {
		return fmt.Errorf("%w: diffoscope --version in the sandbox: %w", ErrNoSandbox, err)
	}
	if !bytes.HasPrefix(out, []byte("diffoscope ")) {
		return fmt.Errorf("%w: diffoscope --version in the sandbox printed %.200q, not diffoscope's version; pass --diffoscope PATH to diffoscope", ErrNoSandbox, out)
	}
	return nil
}

// Cap names one of a run's caps.
type Cap string

const (
	CapTime   Cap = "time"
	CapMemory Cap = "memory"
	CapProcs  Cap = "processes"
	CapDisk   Cap = "disk"
	CapInput  Cap = "input"
)

// LimitError reports that a comparison hit one of its caps: there is no
// report, and the message says which cap and its value.
type LimitError struct {
	Caps []Cap
	msg  string
}

func (e *LimitError) Error() string { return e.msg }

// Diff compares a and b, two versions of an artefact called name, and
// returns diffoscope's report. Two equal inputs give an empty report.
func (d *Differ) Diff(ctx context.Context, name string, a, b io.Reader) ([]byte, error) {
	if err := d.init(); err != nil {
		return nil, err
	}
	dir, err := d.workDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	name = fileName(name)
	maxInput := or(d.MaxInput, DefaultMaxInput)
	for _, f := range []struct {
		side string
		r    io.Reader
	}{{"a", a}, {"b", b}} {
		n, err := writeFile(filepath.Join(dir, f.side, name), io.LimitReader(f.r, maxInput+1))
		if err != nil {
			return nil, fmt.Errorf("diffoscope: %w", err)
		}
		if n > maxInput {
			return nil, &LimitError{Caps: []Cap{CapInput}, msg: fmt.Sprintf("diffoscope %s: output %s is larger than the input cap of %s; no report", name, f.side, size(maxInput))}
		}
	}
	timeout := or(d.Timeout, DefaultTimeout)
	return d.run(ctx, dir, name, []string{
		"--text", "-", "--text-color", "never", "--no-progress",
		// diffoscope's own best effort; the cap kills it a little later.
		"--timeout", strconv.Itoa(max(1, int(timeout.Seconds()*0.9))),
		"a/" + name, "b/" + name,
	})
}

// workDir makes the directory of one run: the inputs go in a/ and b/, a
// program from outside /usr in bin/.
func (d *Differ) workDir() (string, error) {
	dir, err := os.MkdirTemp("", "lantern-diffoscope-")
	if err != nil {
		return "", fmt.Errorf("diffoscope: %w", err)
	}
	return dir, nil
}

// run runs the program with args in the sandbox of dir, capped, and
// returns what it printed on stdout: diffoscope's report.
func (d *Differ) run(ctx context.Context, dir, name string, args []string) ([]byte, error) {
	timeout, maxReport := or(d.Timeout, DefaultTimeout), or(d.MaxReport, DefaultMaxReport)
	maxMemory, maxDisk, maxProcs := or(d.MaxMemory, DefaultMaxMemory), or(d.MaxDisk, DefaultMaxDisk), or(d.MaxProcs, DefaultMaxProcs)
	prog, progDir := d.Path, ""
	if !strings.HasPrefix(filepath.Clean(prog), "/usr/") {
		progDir = filepath.Join(dir, "bin")
		if err := copyProgram(prog, filepath.Join(progDir, filepath.Base(prog))); err != nil {
			return nil, fmt.Errorf("diffoscope: %w", err)
		}
		prog = "/lantern/bin/" + filepath.Base(prog)
	}
	for _, side := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(dir, side), 0o700); err != nil {
			return nil, fmt.Errorf("diffoscope: %w", err)
		}
	}
	user := -1
	if d.setpriv != "" {
		user = or(d.User, DefaultUser)
		if err := chownAll(dir, user); err != nil {
			return nil, fmt.Errorf("diffoscope: %w", err)
		}
	}
	cg, err := newCgroup(d.cgroups, d.cgroup2, maxMemory, maxProcs)
	if err != nil {
		return nil, fmt.Errorf("diffoscope: %w", err)
	}
	defer cg.remove()

	// sh joins the cgroup, then becomes setpriv, which drops root and
	// becomes bwrap: every process of the run is in the cgroup from its
	// start. (cgroup v1 cannot start a process in a cgroup.)
	argv := []string{"-c", `for f in $CGROUP_PROCS; do echo $$ >"$f" || exit 125; done; exec "$@"`, "lantern-diffoscope"}
	if user >= 0 {
		u := strconv.Itoa(user)
		argv = append(argv, d.setpriv, "--reuid="+u, "--regid="+u, "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--")
	}
	argv = append(argv, d.Bwrap)
	argv = append(argv, sandboxArgs(sandbox{dir: dir, progDir: progDir, disk: maxDisk, system: hostSystem()})...)
	argv = append(argv, "--", prog)
	argv = append(argv, args...)

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "/bin/sh", argv...)
	// Not the scheduler's environment, even outside the sandbox.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CGROUP_PROCS=" + strings.Join(cg.procs(), " ")}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cg.kill()
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	report, stderr := &capped.Buffer{Max: maxReport}, &capped.Buffer{Max: 64 << 10}
	full := &watch{want: []byte("No space left on device"), w: stderr}
	cmd.Stdout, cmd.Stderr = report, full
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("diffoscope %s: %w", name, ctx.Err())
	}
	cg.kill() // whatever it left behind
	// Which caps it hit. The kernel says so for memory and processes; a
	// full tmpfs shows only as a failed write, in the errors of diffoscope
	// or its tools. (An input that makes a tool print that line anyway
	// gets its own report refused for a cap it did not hit: nothing more.)
	var caps []Cap
	var hit []string
	memory, procs := cg.hits()
	if memory {
		caps, hit = append(caps, CapMemory), append(hit, fmt.Sprintf("its memory cap of %s (all its processes, its scratch files included)", size(maxMemory)))
	}
	if procs {
		caps, hit = append(caps, CapProcs), append(hit, fmt.Sprintf("its cap of %d processes", maxProcs))
	}
	if full.seen {
		caps, hit = append(caps, CapDisk), append(hit, fmt.Sprintf("its disk cap of %s (its scratch space)", size(maxDisk)))
	}
	if runCtx.Err() != nil {
		caps, hit = append(caps, CapTime), append(hit, fmt.Sprintf("its time limit of %s", timeout))
	}
	if len(caps) > 0 {
		return nil, &LimitError{Caps: caps, msg: fmt.Sprintf("diffoscope %s hit %s; no report", name, strings.Join(hit, " and "))}
	}
	// Exit 0: no difference; 1: a report of the differences; others: it failed.
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.ExitCode() == 1 {
		return report.Bytes("report"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("diffoscope %s: %w: %s", name, err, lastLine(string(stderr.Kept())))
	}
	return report.Bytes("report"), nil
}

// watch passes what is written on to w and notes whether it held want,
// however the writes split it.
type watch struct {
	want []byte
	w    io.Writer
	tail []byte
	seen bool
}

func (w *watch) Write(p []byte) (int, error) {
	if !w.seen {
		joined := append(w.tail, p...)
		w.seen = bytes.Contains(joined, w.want)
		w.tail = bytes.Clone(joined[max(0, len(joined)-len(w.want)+1):])
	}
	return w.w.Write(p)
}

// sandbox is what one run's bwrap is given.
type sandbox struct {
	dir     string // holds a/ and b/, the inputs
	progDir string // a program from outside /usr, or ""
	disk    int64  // the tmpfs's size
	system  []mount
}

// mount is one top-level entry of the host's system: /usr, or /lib as a
// directory or a symlink into /usr.
type mount struct {
	path, link string // link: the symlink's target, or "" for a directory
}

// hostSystem lists the host's /usr and what of /bin, /sbin and /lib*
// exists: symlinks into /usr on a merged-/usr system, else directories.
func hostSystem() []mount {
	out := []mount{{path: "/usr"}}
	for _, p := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if l, err := os.Readlink(p); err == nil {
				out = append(out, mount{path: p, link: l})
			}
		case fi.IsDir():
			out = append(out, mount{path: p})
		}
	}
	return out
}

// sandboxArgs are bwrap's options for s: new namespaces of every kind (no
// network: only a loopback of its own; no user namespaces inside), no
// capabilities, a clean environment, the host's system read-only and
// nothing else of it, the inputs read-only in /in, a tmpfs of s.disk
// bytes at /tmp, and a read-only root and /dev.
func sandboxArgs(s sandbox) []string {
	args := []string{
		"--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
		"--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
		"--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
		"--setenv", "TMPDIR", "/tmp", "--setenv", "HOME", "/tmp",
		"--hostname", "diffoscope",
	}
	for _, m := range s.system {
		if m.link != "" {
			args = append(args, "--symlink", m.link, m.path)
		} else {
			args = append(args, "--ro-bind", m.path, m.path)
		}
	}
	args = append(args,
		// The loader's cache (ctypes finds libarchive through it) and the
		// alternatives some programs in /usr/bin link to; no more of /etc.
		"--dir", "/etc",
		"--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
		"--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
		"--proc", "/proc", "--dev", "/dev",
		"--size", strconv.FormatInt(s.disk, 10), "--perms", "0700", "--tmpfs", "/tmp",
		"--ro-bind", filepath.Join(s.dir, "a"), "/in/a",
		"--ro-bind", filepath.Join(s.dir, "b"), "/in/b",
	)
	if s.progDir != "" {
		args = append(args, "--ro-bind", s.progDir, "/lantern/bin")
	}
	// bwrap's /dev is a tmpfs the sandbox could fill past the disk cap.
	return append(args, "--chdir", "/in", "--remount-ro", "/dev", "--remount-ro", "/")
}

// fileName makes name safe as one file name: an artefact's label may hold
// anything its claim's signer put there.
func fileName(name string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '+':
			return r
		}
		return '_'
	}, name)
	if clean == "" || strings.Trim(clean, ".") == "" {
		clean = "artefact"
	}
	if len(clean) > 128 {
		clean = clean[:128]
	}
	return clean
}

func writeFile(path string, r io.Reader) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err != nil {
		f.Close()
		return n, err
	}
	return n, f.Close()
}

func copyProgram(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o500)
}

// chownAll gives dir and everything in it to uid: the sandbox's user
// reads the inputs (and nobody else may).
func chownAll(dir string, uid int) error {
	return filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

func size(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return "(it printed nothing on stderr)"
	}
	return s
}
