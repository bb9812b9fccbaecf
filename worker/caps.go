package worker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanternfarm/lantern/worker/cgroup"
)

// Caps bound what one build step may take of the machine its worker runs
// on — a volunteer's. A build past one is killed and signed as failed, at
// stage "build", with the cap named (a *CapError). A zero field is no cap.
//
// Memory and Processes are held by a cgroup the worker makes for the step
// (package cgroup), Disk by watching the step's output directory while it
// is written: BuildKit exports only a directory that is on disk, where
// nothing caps it (a tmpfs has a size, but BuildKit cannot export one, and
// a copy out of it would run in the builder image, which the build spec
// chooses), and neither an ext4 loop device nor a project quota can be
// handed to one step. The watch looks every pollEvery through the step's
// own root (/proc/PID/root) and kills the step once the directory holds
// more than Disk bytes; a writer gets at most what it writes in that
// while past the cap — the memory cap, which holds the page cache of what
// it writes, slows it down to the disk's pace — not the whole disk. The
// scratch space of the recipes is a tmpfs, which the memory cap covers.
//
// All of them need the buildkitd on the worker's machine, as root, and
// the worker as root too: see CheckCaps.
type Caps struct {
	// Memory caps the bytes of memory of the build step: its processes,
	// its tmpfs scratch space and the page cache of what it writes.
	Memory int64
	// Processes caps the processes and threads the step holds at once.
	Processes int64
	// Disk caps the bytes in the step's output directory, while they are
	// written: each file counts at least 4 KiB (a block), and a sparse
	// file its whole size, which its export would write out.
	Disk int64
}

// DefaultCaps are the caps of 'lantern worker' and 'lantern up' unless
// their flags say otherwise: room for a Go build of a large module (a few
// GiB, and the compiler's many threads) and the generic recipe's largest
// outputs (2 GiB), not for a build that would take a volunteer's machine.
var DefaultCaps = Caps{Memory: 8 << 30, Processes: 4096, Disk: 2 << 30}

// exportCap is the most bytes a build's export may write into the worker's
// output directory: the recipe's output limit, or the disk cap where that
// is smaller. The watch of a running step sees what it writes while it
// runs; the export is capped as it is unpacked, so that a build that writes
// its outputs fast and exits (or leaves a sparse file) between two looks
// writes no more on the worker's disk.
func exportCap(output, disk int64) int64 {
	if disk > 0 && (output <= 0 || disk < output) {
		return disk
	}
	return output
}

// pollEvery is how often a running step's cgroup and output directory are
// looked at.
const pollEvery = 200 * time.Millisecond

// ErrCap is what every *CapError is, for errors.Is.
var ErrCap = errors.New("build killed past a cap")

// CapError reports a build killed for passing one of its worker's caps.
type CapError struct {
	// Cap is "memory", "process" or "disk".
	Cap string
	// Limit is the cap, in bytes or processes.
	Limit int64
}

func (e *CapError) Error() string {
	switch e.Cap {
	case "process":
		return fmt.Sprintf("killed: past the process cap of %d (processes and threads at once)", e.Limit)
	case "disk":
		return fmt.Sprintf("killed: past the disk cap of %s in its output directory", mib(e.Limit))
	}
	return fmt.Sprintf("killed: past the %s cap of %s", e.Cap, mib(e.Limit))
}

// Is makes a *CapError ErrCap.
func (e *CapError) Is(target error) bool { return target == ErrCap }

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// CheckCaps reports whether builds can be held to c on this machine — by
// making a cgroup with its caps and removing it — and says how to fix it
// where they cannot: a worker checks once as it starts, not with every job.
func CheckCaps(c Caps) error {
	if c.Memory < 0 || c.Processes < 0 || c.Disk < 0 {
		return fmt.Errorf("build caps %+v: want 0 (no cap) or more", c)
	}
	if c == (Caps{}) {
		return nil
	}
	g, err := cgroup.New(cgroupName(), cgroup.Limits{Memory: c.Memory, Processes: c.Processes})
	if err != nil {
		return fmt.Errorf("build caps: %w; caps need the worker to run as root beside its buildkitd, with cgroup v2 or the v1 memory and pids controllers; to run builds without them, set the caps to 0", err)
	}
	return g.Close()
}

func cgroupName() string {
	return "lantern/" + strings.ToLower(rand.Text()[:16])
}

// confine runs build with its step held to caps: in a new cgroup with the
// memory and process caps, whose name build hands to BuildKit
// (recipes.Limits.Cgroup), and its output directory — out, as the step
// sees it — watched. A step past a cap is killed (build's context is
// cancelled) and confine returns a *BuildError with the *CapError, also
// where the step went on to succeed. The cgroup is removed after.
func confine(ctx context.Context, caps Caps, out string, log io.Writer, build func(ctx context.Context, cgroup string) error) error {
	if caps == (Caps{}) {
		return build(ctx, "")
	}
	g, err := cgroup.New(cgroupName(), cgroup.Limits{Memory: caps.Memory, Processes: caps.Processes})
	if err != nil {
		return fmt.Errorf("build caps: %w", err)
	}
	defer g.Close() // a group left behind holds nothing
	bctx, kill := context.WithCancelCause(ctx)
	defer kill(nil)
	w := &watch{g: g, caps: caps, out: out}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if ce := w.check(time.Now()); ce != nil {
				kill(ce)
				return
			}
		}
	})
	err = build(bctx, g.Name())
	close(stop)
	wg.Wait()
	// A cap passed since the last look, or by a step that went on.
	ce, _ := context.Cause(bctx).(*CapError)
	if ce == nil {
		ce = w.check(time.Time{})
	}
	if ce != nil {
		fmt.Fprintf(log, "lantern: the build step was %v\n", ce)
		return &BuildError{Stage: "build", Err: ce}
	}
	if err != nil {
		return err
	}
	// The step ran: it must have run in the group, or the caps did not hold.
	used, uerr := g.Used()
	if uerr != nil {
		return fmt.Errorf("build caps: %w", uerr)
	}
	if !used && !w.seen {
		return fmt.Errorf("build caps: the build step did not run in cgroup %s, which holds its caps: the buildkitd must run on the worker's machine, outside a container of its own, or set the caps to 0", g.Name())
	}
	return nil
}

// watch looks at a running step's cgroup and output directory.
type watch struct {
	g    *cgroup.Group
	caps Caps
	out  string
	seen bool      // a process of the step was found
	next time.Time // when to measure the output directory again
}

// check returns the cap the step has passed, if any. The output directory
// is measured at most every few polls when measuring it takes long; a zero
// now measures it whatever the time.
func (w *watch) check(now time.Time) *CapError {
	// An error reading the cgroup is taken as no news: the step's end
	// removes cgroups below the group while they are read.
	if p, err := w.g.Passed(); err == nil {
		switch {
		case p.Memory:
			return &CapError{Cap: "memory", Limit: w.caps.Memory}
		case p.Processes:
			return &CapError{Cap: "process", Limit: w.caps.Processes}
		}
	}
	if w.caps.Disk <= 0 || (!now.IsZero() && now.Before(w.next)) {
		return nil
	}
	dir, ok := w.stepDir()
	if !ok {
		return nil
	}
	w.seen = true
	start := time.Now()
	n, err := dirSize(dir, w.caps.Disk)
	// A long walk (many files) is not repeated at once.
	w.next = time.Now().Add(4 * time.Since(start))
	if err == nil && n > w.caps.Disk {
		return &CapError{Cap: "disk", Limit: w.caps.Disk}
	}
	return nil
}

// dirSize returns the bytes under dir, as Caps.Disk counts them, stopping
// once past limit. Symbolic links are not followed.
func dirSize(dir string, limit int64) (int64, error) {
	const block = 4096
	var total int64
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		n := int64(block)
		if fi, err := e.Info(); err == nil {
			n = max(n, fi.Size(), allocated(fi))
		}
		total += n
		if total > limit {
			return filepath.SkipAll
		}
		return nil
	})
	return total, err
}
