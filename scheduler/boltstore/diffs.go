package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// Difference reports.

// diffKey is the key of the report on outputs a and b: the two sums, the
// smaller first, so that either order finds it.
func diffKey(a, b lantern.Digest) []byte {
	ka, kb := appendDigest(nil, a), appendDigest(nil, b)
	if bytes.Compare(ka, kb) > 0 {
		ka, kb = kb, ka
	}
	return append(ka, kb...)
}

// wantDiffs adds a pending report for each pair of outputs v calls for
// that has none, and puts a failed one back to pending when a new
// attestation a comes (a verdict decided again brings no new output).
func wantDiffs(tx *bolt.Tx, v lantern.Verdict, a scheduler.AttestationRecord) error {
	now := a.Received
	if now.IsZero() {
		now = a.Finished
	}
	retry := !a.Envelope.IsZero()
	db := tx.Bucket(bDiffs)
	for _, d := range scheduler.DiffsWanted(v, now) {
		k := diffKey(d.A, d.B)
		if old := db.Get(k); old != nil {
			var prev scheduler.DiffRecord
			if err := json.Unmarshal(old, &prev); err != nil {
				return fmt.Errorf("diff %s %s: %w", d.A, d.B, err)
			}
			if prev.State != scheduler.DiffFailed || !retry {
				continue
			}
		}
		if err := putDiff(tx, k, d); err != nil {
			return err
		}
	}
	return nil
}

func putDiff(tx *bolt.Tx, k []byte, d scheduler.DiffRecord) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bDiffs).Put(k, b); err != nil {
		return err
	}
	pending := tx.Bucket(bDiffsPending)
	if d.State == scheduler.DiffPending {
		return pending.Put(k, nil)
	}
	return pending.Delete(k)
}

// Diff returns the difference report on outputs a and b, in either order.
func (s *Store) Diff(ctx context.Context, a, b lantern.Digest) (*scheduler.DiffRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var d scheduler.DiffRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bDiffs).Get(diffKey(a, b))
		if v == nil {
			return scheduler.ErrNotFound
		}
		return json.Unmarshal(v, &d)
	})
	if err != nil {
		return nil, fmt.Errorf("diff %s %s: %w", a, b, err)
	}
	return &d, nil
}

// PendingDiffs returns at most count pending difference reports, in the
// order of their keys.
func (s *Store) PendingDiffs(ctx context.Context, count int) ([]scheduler.DiffRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	count = pageCount(count)
	var out []scheduler.DiffRecord
	errFull := errors.New("full")
	err := s.db.View(func(tx *bolt.Tx) error {
		diffs := tx.Bucket(bDiffs)
		return each(tx.Bucket(bDiffsPending), nil, func(k, _ []byte) error {
			var d scheduler.DiffRecord
			if err := json.Unmarshal(diffs.Get(k), &d); err != nil {
				return fmt.Errorf("diff %x: %w", k, err)
			}
			out = append(out, d)
			if len(out) == count {
				return errFull
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, errFull) {
		return nil, fmt.Errorf("pending diffs: %w", err)
	}
	return out, nil
}

// PutDiff stores d over the report on its pair of outputs.
func (s *Store) PutDiff(ctx context.Context, d scheduler.DiffRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case d.A.IsZero() || d.B.IsZero() || d.A == d.B:
		return fmt.Errorf("put diff: outputs %s and %s: want two different digests", d.A, d.B)
	case d.State != scheduler.DiffPending && d.State != scheduler.DiffDone && d.State != scheduler.DiffFailed:
		return fmt.Errorf("put diff %s %s: state %q: want pending, done or failed", d.A, d.B, d.State)
	case d.State == scheduler.DiffDone && d.Report.IsZero():
		return fmt.Errorf("put diff %s %s: done with no report", d.A, d.B)
	}
	err := s.db.Update(func(tx *bolt.Tx) error { return putDiff(tx, diffKey(d.A, d.B), d) })
	if err != nil {
		return fmt.Errorf("put diff %s %s: %w", d.A, d.B, err)
	}
	return nil
}
