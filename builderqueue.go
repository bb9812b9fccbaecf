package lantern

import "time"

// BuilderQueue is where one builder's queue of jobs stands, as the farm's
// transport sees it: the scheduler shows it in `lantern status`, and the
// NATS adapter reads it from the builder's durable consumer.
type BuilderQueue struct {
	// Queued are the jobs no worker of the builder has taken yet.
	Queued int `json:"queued"`
	// Building are the jobs a worker holds, not yet answered (or not yet
	// given back after that worker died).
	Building int `json:"building"`
	// Waiting counts the workers' pulls waiting for a job now: a worker
	// that is connected and idle has one.
	Waiting int `json:"waiting"`
	// LastDelivered is when a worker last took a job; LastAnswered when a
	// worker last settled one (zero: not since the transport started).
	LastDelivered time.Time `json:"lastDelivered,omitzero"`
	LastAnswered  time.Time `json:"lastAnswered,omitzero"`
}

// Online reports whether a worker of the builder is there now: waiting
// for a job, or holding one.
func (q BuilderQueue) Online() bool { return q.Waiting > 0 || q.Building > 0 }
