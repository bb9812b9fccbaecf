package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
)

// Differ explains how two versions of an artefact differ, in a report
// for people (package scheduler/diffoscope runs diffoscope).
type Differ interface {
	// Diff returns the report on a and b, two versions of the artefact
	// called name; an empty report means that it saw no difference.
	Diff(ctx context.Context, name string, a, b io.Reader) ([]byte, error)
}

// Objects is the farm's object store, where workers keep their build logs
// and outputs and the scheduler its difference reports, each under its
// digest (natsq.Queue is one).
type Objects interface {
	ObjectReader
	// PutObject stores the bytes of r and returns their digest; name is a
	// description for people.
	PutObject(ctx context.Context, name string, r io.Reader) (lantern.Digest, error)
}

// ErrNoObject reports a digest that names nothing in the object store.
var ErrNoObject = lantern.ErrNoObject

// diffBatch is how many pending reports runDiffs reads at a time.
const diffBatch = 16

// noDifference is the report stored when the differ saw no difference
// between two outputs whose digests differ.
const noDifference = "diffoscope shows no difference between the two files, though their bytes differ.\n"

// runDiffs makes the pending difference reports, one at a time, until ctx
// ends: it reads both outputs from objects, runs the differ, and stores the
// report in objects and its record in the store. It waits for a wake-up
// (a new mismatch) when nothing is pending, and retries after a while what
// failed for the store or the object store.
func (s *Scheduler) runDiffs(ctx context.Context, objects Objects) error {
	for {
		pending, err := s.st.PendingDiffs(ctx, diffBatch)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("reading the pending difference reports failed; retrying", "error", err)
		}
		done := 0
		for _, d := range pending {
			if err := s.makeDiff(ctx, objects, d); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn("difference report not made; retrying later", "a", d.A.Short(), "b", d.B.Short(), "error", err)
				continue
			}
			done++
		}
		if done > 0 {
			continue
		}
		s.retryReleases(ctx)
		var retry <-chan time.Time
		if err != nil || len(pending) > 0 || len(s.unreleased) > 0 {
			retry = time.After(s.cfg.DiffRetry)
		}
		select {
		case <-s.diffWake:
		case <-retry:
		case <-ctx.Done():
			return nil
		}
	}
}

// wakeDiffs tells runDiffs that there may be new pending reports.
func (s *Scheduler) wakeDiffs() {
	select {
	case s.diffWake <- struct{}{}:
	default: // one wake-up is waiting already
	}
}

// makeDiff makes the report d asks for and stores it done or failed. An
// error means neither: the store or the object store failed, and d stays
// pending.
func (s *Scheduler) makeDiff(ctx context.Context, objects Objects, d DiffRecord) error {
	log := s.log.With("source", d.Source.String(), "label", d.Label, "a", d.A.Short(), "b", d.B.Short())
	failed := func(reason string) error {
		d.State, d.Reason, d.Updated = DiffFailed, reason, s.cfg.Now().UTC()
		if err := s.st.PutDiff(ctx, d); err != nil {
			return err
		}
		s.metrics.diffs.WithLabelValues("failed").Inc()
		log.Warn("no difference report", "reason", reason)
		return nil
	}
	var readers []io.Reader
	var missing []string
	for _, out := range []lantern.Digest{d.A, d.B} {
		rc, err := objects.GetObject(ctx, out)
		if errors.Is(err, ErrNoObject) {
			missing = append(missing, fmt.Sprintf("output %s is not in the farm's object store: no builder that got it uploaded it, or it was removed (after an earlier report, or %s after its upload)", out, s.cfg.OutputRetention))
			continue
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		readers = append(readers, rc)
	}
	if len(missing) > 0 {
		return failed(strings.Join(missing, "; "))
	}
	report, err := s.cfg.Differ.Diff(ctx, d.Label, readers[0], readers[1])
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := failed(err.Error()); err != nil {
			return err
		}
		s.releaseOutputs(ctx, d) // the differ gave up on them for good
		return nil
	}
	if len(report) == 0 {
		report = []byte(noDifference)
	}
	rd, err := objects.PutObject(ctx, fmt.Sprintf("diffoscope %s %s %s", d.Label, d.A.Short(), d.B.Short()), bytes.NewReader(report))
	if err != nil {
		return err
	}
	d.State, d.Report, d.Reason, d.Updated = DiffDone, rd, "", s.cfg.Now().UTC()
	if err := s.st.PutDiff(ctx, d); err != nil {
		return err
	}
	s.metrics.diffs.WithLabelValues("done").Inc()
	log.Info("difference report made", "report", rd.Short(), "bytes", len(report))
	s.releaseOutputs(ctx, d)
	return nil
}
