package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
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
const diffBatch = 1000

// diffTries is how many times a request for a report is delivered before
// the report is failed: a diffoscope that kills its scheduler must not
// kill every one in turn. A request whose outputs could not be read is
// tried again after half a minute: ten tries outlast a NATS node's loss.
const diffTries = 10

// noDifference is the report stored when the differ saw no difference
// between two outputs whose digests differ.
const noDifference = "diffoscope shows no difference between the two files, though their bytes differ.\n"

// DiffQueue is how the schedulers of a farm share the difference reports
// (natsq.Queue is one): every scheduler asks for the reports its store
// wants, one scheduler with a Differ makes each, and every scheduler
// stores what came of it.
type DiffQueue interface {
	// WantDiff asks for the report key, once for the farm.
	WantDiff(ctx context.Context, key string, data []byte) error
	// MadeDiff says what came of the report key, once for the farm: the
	// first word is kept.
	MadeDiff(ctx context.Context, key string, data []byte) error
	// DiffMade returns what came of the report key, and false if nothing
	// has yet.
	DiffMade(ctx context.Context, key string) ([]byte, bool, error)
	// ConsumeDiffWork calls handle with one request at a time, each
	// request going to one of the farm's schedulers, until ctx ends; a
	// request is done when handle returns nil or a *Permanent error.
	ConsumeDiffWork(ctx context.Context, handle func(ctx context.Context, m Message) error) error
	// ConsumeDiffs calls handle with batches of the reports made, every
	// one to every scheduler, until ctx ends.
	ConsumeDiffs(ctx context.Context, handle BatchHandler) error
	// ReplayDiffs calls handle with every request and report, from the
	// first.
	ReplayDiffs(ctx context.Context, handle BatchHandler) error
}

// DiffKey is the key of the request for report d: the same for every
// scheduler that wants it, since d's outputs and the time it was wanted
// (the receipt of the result that made it wanted, a time of the stream)
// are; a failed report wanted again by a later result is a new request.
func DiffKey(d DiffRecord) string {
	a, b := d.A.String(), d.B.String()
	if a > b {
		a, b = b, a
	}
	return lantern.DigestOf([]byte("lantern diff v1\x00" + a + "\x00" + b + "\x00" + d.Updated.UTC().Format(time.RFC3339Nano))).Hex()[:32]
}

// runDiffs asks, once for the farm, for the reports its store has pending,
// until ctx ends. It waits for a wake-up (a new mismatch), and asks again
// after Config.DiffRetry for what it could not ask for, and tries again to
// remove the outputs of reports made that it could not remove.
func (s *Scheduler) runDiffs(ctx context.Context, dq DiffQueue) error {
	asked := map[string]bool{}
	for {
		pending, err := s.st.PendingDiffs(ctx, diffBatch)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("reading the pending difference reports failed; retrying", "error", err)
		}
		failed := err != nil
		for _, d := range pending {
			key := DiffKey(d)
			if asked[key] {
				continue
			}
			// Made already, and read before this store wanted it (the
			// reports and the results are streams of their own): it is
			// taken from the stream.
			made, ok, err := dq.DiffMade(ctx, key)
			if err == nil && ok {
				var m DiffRecord
				if err = json.Unmarshal(made, &m); err == nil {
					err = s.putMadeDiff(ctx, m)
				}
			} else if err == nil {
				var b []byte
				if b, err = json.Marshal(d); err == nil {
					err = dq.WantDiff(ctx, key, b)
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn("difference report neither asked for nor read; retrying later", "a", d.A.Short(), "b", d.B.Short(), "error", err)
				failed = true
				continue
			}
			asked[key] = true
		}
		s.retryReleases(ctx)
		var retry <-chan time.Time
		if failed || s.releasesLeft() {
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

// ingestDiffs stores the reports made that the farm's stream of difference
// reports brings (requests are skipped): over a pending or failed record of
// their pair, never over a done one.
func (s *Scheduler) ingestDiffs(ctx context.Context, msgs []Message) []error {
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		if !strings.HasPrefix(m.Subject, DiffMadeSubjectPrefix) {
			continue
		}
		var d DiffRecord
		if err := json.Unmarshal(m.Data, &d); err != nil {
			errs[i] = &Permanent{Err: fmt.Errorf("difference report on %s: %w", m.Subject, err)}
			continue
		}
		errs[i] = s.putMadeDiff(ctx, d)
	}
	return errs
}

// DiffMadeSubjectPrefix starts the subjects of the reports made.
const DiffMadeSubjectPrefix = "lantern.diffs.made."

// putMadeDiff stores d, a report made, unless the store has a done one on
// its pair.
func (s *Scheduler) putMadeDiff(ctx context.Context, d DiffRecord) error {
	if d.State != DiffDone && d.State != DiffFailed {
		return &Permanent{Err: fmt.Errorf("difference report on %s %s: state %q, want done or failed", d.A, d.B, d.State)}
	}
	have, err := s.st.Diff(ctx, d.A, d.B)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	case have.State == DiffDone && d.State != DiffDone:
		return nil
	}
	if err := s.st.PutDiff(ctx, d); err != nil {
		if strings.Contains(err.Error(), "want two different digests") || strings.Contains(err.Error(), "done with no report") {
			return &Permanent{Err: err}
		}
		return err
	}
	return nil
}

// diffWork makes the report that the request m asks for, unless it is made
// already, and says what came of it to every scheduler: the one
// scheduler of the farm that took m does this. An error means the report
// is to be tried again (by any scheduler).
func (s *Scheduler) diffWork(ctx context.Context, dq DiffQueue, objects Objects, m Message) error {
	var d DiffRecord
	if err := json.Unmarshal(m.Data, &d); err != nil || d.A.IsZero() || d.B.IsZero() {
		return &Permanent{Err: fmt.Errorf("difference report request on %s: not a report's record (%v)", m.Subject, err)}
	}
	key := DiffKey(d)
	if _, made, err := dq.DiffMade(ctx, key); err != nil {
		return err
	} else if made {
		return nil // by a scheduler that died before it could say it was done
	}
	if m.Deliveries > diffTries {
		d.State, d.Reason = DiffFailed, fmt.Sprintf("tried %d times without a report: the schedulers that ran it died or kept failing", m.Deliveries-1)
		return s.madeDiff(ctx, dq, key, d, false)
	}
	d, release, err := s.makeDiff(ctx, objects, d)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("difference report not made; retrying later", "a", d.A.Short(), "b", d.B.Short(), "error", err)
		}
		return err
	}
	return s.madeDiff(ctx, dq, key, d, release)
}

// madeDiff says what came of report key and stores it, and lets go of its
// outputs if release.
func (s *Scheduler) madeDiff(ctx context.Context, dq DiffQueue, key string, d DiffRecord, release bool) error {
	d.Updated = s.cfg.Now().UTC()
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := dq.MadeDiff(ctx, key, b); err != nil {
		return err
	}
	if err := s.putMadeDiff(ctx, d); err != nil {
		s.log.Warn("difference report made, not stored here yet (it comes back from the stream)", "error", err)
	}
	if release {
		s.releaseOutputs(ctx, d)
	}
	return nil
}

// makeDiff makes the report d asks for and returns d done or failed, and
// whether its outputs are done with (the report is made, or the differ gave
// up on them for good). An error means neither: the object store failed,
// and d is to be tried again.
func (s *Scheduler) makeDiff(ctx context.Context, objects Objects, d DiffRecord) (DiffRecord, bool, error) {
	log := s.log.With("source", d.Source.String(), "label", d.Label, "a", d.A.Short(), "b", d.B.Short())
	failed := func(reason string, release bool) (DiffRecord, bool, error) {
		d.State, d.Reason = DiffFailed, reason
		s.metrics.diffs.WithLabelValues("failed").Inc()
		log.Warn("no difference report", "reason", reason)
		return d, release, nil
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
			return d, false, err
		}
		defer rc.Close()
		readers = append(readers, rc)
	}
	if len(missing) > 0 {
		return failed(strings.Join(missing, "; "), false)
	}
	report, err := s.cfg.Differ.Diff(ctx, d.Label, readers[0], readers[1])
	if err != nil {
		if ctx.Err() != nil {
			return d, false, ctx.Err()
		}
		return failed(err.Error(), true)
	}
	if len(report) == 0 {
		report = []byte(noDifference)
	}
	rd, err := objects.PutObject(ctx, fmt.Sprintf("diffoscope %s %s %s", d.Label, d.A.Short(), d.B.Short()), bytes.NewReader(report))
	if err != nil {
		return d, false, err
	}
	d.State, d.Report, d.Reason = DiffDone, rd, ""
	s.metrics.diffs.WithLabelValues("done").Inc()
	log.Info("difference report made", "report", rd.Short(), "bytes", len(report))
	return d, true, nil
}
