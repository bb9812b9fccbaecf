package natsq

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Hooks for the external tests (package natsq_test), which cannot reach
// the Queue's internals otherwise.

// SpoolInMemory is how many bytes PutObject and GetObject hold in memory
// before they spill to a temporary file.
const SpoolInMemory = spoolInMemory

// JetStreamForTest returns the connection's JetStream context, with the
// permissions of the connection's user.
func (q *Queue) JetStreamForTest() jetstream.JetStream { return q.js }

// ConnForTest returns the connection itself: closing it is a worker
// process dying.
func (q *Queue) ConnForTest() *nats.Conn { return q.nc }

// SetReadTimeForTest makes reading an object from one bucket give up after
// d, until the test ends.
func SetReadTimeForTest(cleanup func(func()), d time.Duration) {
	old := readTime
	readTime = func(uint64) time.Duration { return d }
	cleanup(func() { readTime = old })
}

// SetOrphanAgeForTest sets how old the chunks of an unfinished upload are
// before the sweep removes them, until the test ends.
func SetOrphanAgeForTest(cleanup func(func()), d time.Duration) {
	old := orphanAge
	orphanAge = d
	cleanup(func() { orphanAge = old })
}

// TakeNameForTest takes the scheduler's name by force, whoever holds it:
// what a newcomer does once the holder has been silent for the TTL, as a
// holder cut off from NATS is.
func (q *Queue) TakeNameForTest(ctx context.Context, me Holder) (*NameLease, error) {
	return q.holdName(ctx, me, true)
}

// ConfirmedForTest returns when the hold's last confirmed rewrite was
// sent.
func (l *NameLease) ConfirmedForTest() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.confirmed
}
