package scheduler

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
)

// jobless is a store that has no job yet: what the scheduler sees when a
// builder fails a job to its last delivery before the job's claim is
// committed. Only the two methods deadLetter calls are there.
type jobless struct {
	Store
	stored bool // SetJobState finds the job
	states int
}

func (s *jobless) PutDeadLetter(context.Context, DeadLetter) (bool, error) { return true, nil }

func (s *jobless) SetJobState(context.Context, string, lantern.Digest, BuilderJob) error {
	if !s.stored {
		return ErrNotFound
	}
	s.states++
	return nil
}

// TestDeadLetterBeforeItsJob: a dead letter of a job not stored yet is
// tried again until the job is there, so the builder's state of it ends
// dead; one of a job that never comes is given up after deadLetterWait.
func TestDeadLetterBeforeItsJob(t *testing.T) {
	now := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	st := &jobless{}
	s := &Scheduler{cfg: Config{Now: func() time.Time { return now }}, st: st, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	d := DeadLetter{JobID: "j1", Builder: lantern.DigestOf([]byte("builder")), Deliveries: 5, Time: now.Add(-time.Second)}
	if err := s.deadLetter(t.Context(), d); err == nil {
		t.Fatal("deadLetter of a job not stored yet = nil, want an error, to be tried again")
	}
	st.stored = true
	if err := s.deadLetter(t.Context(), d); err != nil || st.states != 1 {
		t.Fatalf("deadLetter once the job is stored = %v (%d states set), want the job dead", err, st.states)
	}
	st.stored = false
	d.Time = now.Add(-deadLetterWait)
	if err := s.deadLetter(t.Context(), d); err != nil {
		t.Errorf("deadLetter of a job still not stored after %s = %v, want it given up", deadLetterWait, err)
	}
}
