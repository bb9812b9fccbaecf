package scheduler

import (
	"context"

	"github.com/lanternfarm/lantern"
)

// Queue is the scheduler's side of the transport: NATS JetStream in
// production (package natsq), where claims, jobs and results are streams
// that outlive any process.
type Queue interface {
	// PublishClaim puts a claim envelope on the claims stream, where Run's
	// ingest picks it up. Publishing the same envelope twice within the
	// stream's duplicate window stores it once.
	PublishClaim(ctx context.Context, envelope []byte) error
	// PublishJobs queues jobs for every builder; a job id published twice
	// within the duplicate window is queued once.
	PublishJobs(ctx context.Context, jobs []lantern.Job) error
	// PublishResult puts a builder's attestation envelope on the results
	// stream.
	PublishResult(ctx context.Context, builder lantern.Digest, envelope []byte) error
	// EnsureBuilder makes sure builder has its durable consumer of jobs
	// (and wherever it uploads); backlog says whether a new consumer starts
	// with the jobs already queued or only with new ones.
	EnsureBuilder(ctx context.Context, builder lantern.Digest, backlog bool) error
	// RemoveBuilder takes a revoked builder off the bus: its consumer goes,
	// so none of its workers takes another job.
	RemoveBuilder(ctx context.Context, builder lantern.Digest) error

	// ConsumeClaims and ConsumeResults call handle with batches of messages
	// from the scheduler's own durable consumer of their stream (every
	// scheduler of a farm reads every message) until ctx ends. Each message is
	// acked when handle returns nil for it and redelivered otherwise.
	ConsumeClaims(ctx context.Context, handle BatchHandler) error
	ConsumeResults(ctx context.Context, handle BatchHandler) error
	// ConsumeDeadLetters calls handle for every job a builder's consumer gave
	// up on after its last delivery.
	ConsumeDeadLetters(ctx context.Context, handle func(ctx context.Context, d DeadLetter) error) error
	// Replay calls handle with every message of the claims stream, then
	// every message of the results stream, from the first, and returns when
	// it has seen them all.
	Replay(ctx context.Context, claims, results BatchHandler) error
	// ReplayDeadLetters calls handle with every dead letter of the
	// dead-letter stream, from the first.
	ReplayDeadLetters(ctx context.Context, handle func(ctx context.Context, d DeadLetter) error) error

	// DiffQueue shares the difference reports between the farm's
	// schedulers.
	DiffQueue
}

// Message is one message off a stream (lantern.Message).
type Message = lantern.Message

// BatchHandler handles a batch of messages (lantern.BatchHandler).
type BatchHandler = lantern.BatchHandler

// Permanent marks an error that redelivery cannot cure (lantern.Permanent).
type Permanent = lantern.Permanent
