package lantern

import (
	"context"
	"errors"
	"time"
)

// The messages below are what crosses the farm's bus besides jobs (Job)
// and signed envelopes: the scheduler and the NATS adapter both speak
// them, and neither imports the other.

// Message is one message off a stream.
type Message struct {
	Data []byte
	// Subject is the subject it was published on.
	Subject string
	// Deliveries counts the deliveries of the message, this one included
	// (0 where the transport does not count).
	Deliveries int
	// Time is when the stream stored the message (zero where unknown): a
	// reindex gives records the times they first had.
	Time time.Time
}

// BatchHandler handles a batch of messages and returns one error per
// message (nil: done, ack it; non-nil: redeliver it). A message whose error
// is Permanent is acked and dropped: retrying cannot help it.
type BatchHandler func(ctx context.Context, msgs []Message) []error

// Permanent marks an error that redelivery cannot cure (a bad signature).
type Permanent struct{ Err error }

func (p *Permanent) Error() string { return p.Err.Error() }
func (p *Permanent) Unwrap() error { return p.Err }

// DeadLetter is a job that a builder's consumer gave up on after its last
// delivery.
type DeadLetter struct {
	JobID      string    `json:"jobId"`
	Builder    Digest    `json:"builder"`
	Deliveries int       `json:"deliveries"`
	Time       time.Time `json:"time"`
}

// ErrNoObject reports a digest that names nothing in the farm's object
// store.
var ErrNoObject = errors.New("not in the object store")
