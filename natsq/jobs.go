package natsq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
)

// Errors of the job consumer that callers branch on.
var (
	// ErrUnknownBuilder reports a builder without a consumer on
	// LANTERN_JOBS: the scheduler has not added it (EnsureBuilder).
	ErrUnknownBuilder = errors.New("builder has no job consumer")
	// ErrClosed reports a JobConsumer that was closed.
	ErrClosed = errors.New("job consumer closed")
	// ErrSettled reports a job message that was already acked, nak'd or
	// terminated.
	ErrSettled = errors.New("job already acked, nak'd or terminated")
	// ErrConnClosed reports a connection that is closed for good: closed
	// by this process, or by the server, which refused the credentials
	// (a builder that was removed from the farm).
	ErrConnClosed = nats.ErrConnectionClosed
	// ErrNotSetUp reports a farm whose streams or buckets are missing: the
	// scheduler has not set it up (workers never create them).
	ErrNotSetUp = errors.New("the farm is not set up")
)

// ackTimeout bounds an ack, nak, term or heartbeat whose ctx has no
// deadline, retries included: long enough to ride out the loss of a node of
// a cluster and the election of the consumer's new leader.
const ackTimeout = time.Minute

// builderConsumer is the configuration of builder's durable consumer of
// LANTERN_JOBS.
func (q *Queue) builderConsumer(builder lantern.Digest, backlog bool) jetstream.ConsumerConfig {
	deliver := jetstream.DeliverNewPolicy
	if backlog {
		deliver = jetstream.DeliverAllPolicy
	}
	ackWait := q.cfg.AckWait
	if len(q.cfg.BackOff) > 0 {
		ackWait = q.cfg.BackOff[0] // NATS's rule with a back-off
	}
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(builder),
		Description:   "Lantern builder " + builder.String(),
		DeliverPolicy: deliver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    q.cfg.MaxDeliver,
		BackOff:       slices.Clone(q.cfg.BackOff),
		Metadata:      map[string]string{MetadataBuilder: builder.String()},
	}
}

// EnsureBuilder makes sure builder has its durable consumer on LANTERN_JOBS,
// builder-<first 16 hex of its key id>, and its object store bucket
// (BuilderBucket), where only it can upload. A new consumer starts with every job
// in the stream when backlog is true, and with the jobs published from now
// on otherwise. An existing consumer keeps its position (backlog does not
// matter then); its ack wait, max deliver and back-off are brought up to
// date with Config.
func (q *Queue) EnsureBuilder(ctx context.Context, builder lantern.Digest, backlog bool) error {
	if builder.IsZero() {
		return errors.New("ensure builder: key id is empty")
	}
	if err := q.ensureBucket(ctx, BuilderBucket(builder), "Lantern builder "+builder.String()+"'s build logs and outputs, named by their sha256 digest"); err != nil {
		return fmt.Errorf("ensure builder %s: %w", builder, err)
	}
	want := q.builderConsumer(builder, backlog)
	name := want.Durable
	for range 3 {
		c, err := q.js.Consumer(ctx, StreamJobs, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			_, err = q.js.CreateConsumer(ctx, StreamJobs, want)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				continue // made by someone else just now: update that one
			}
			if err != nil {
				return fmt.Errorf("ensure builder %s: create consumer %s: %w", builder, name, err)
			}
			q.recordBuilder(name, builder)
			return nil
		}
		if err != nil {
			return fmt.Errorf("ensure builder %s: consumer %s: %w", builder, name, err)
		}
		have := c.CachedInfo().Config
		if owner, ok := have.Metadata[MetadataBuilder]; ok && owner != builder.String() {
			return fmt.Errorf("ensure builder %s: consumer %s belongs to builder %s", builder, name, owner)
		}
		if have.AckWait != want.AckWait || have.MaxDeliver != want.MaxDeliver ||
			!slices.Equal(have.BackOff, want.BackOff) || have.Metadata[MetadataBuilder] != builder.String() {
			upd := have
			upd.AckWait, upd.MaxDeliver, upd.BackOff = want.AckWait, want.MaxDeliver, want.BackOff
			upd.Description = want.Description
			upd.Metadata = maps.Clone(have.Metadata)
			if upd.Metadata == nil {
				upd.Metadata = make(map[string]string)
			}
			upd.Metadata[MetadataBuilder] = builder.String()
			if _, err := q.js.UpdateConsumer(ctx, StreamJobs, upd); err != nil {
				return fmt.Errorf("ensure builder %s: update consumer %s: %w", builder, name, err)
			}
		}
		q.recordBuilder(name, builder)
		return nil
	}
	return fmt.Errorf("ensure builder %s: consumer %s keeps changing; try again", builder, name)
}

// RemoveBuilder deletes builder's consumer: its workers can take no more
// jobs. Its bucket stays, with what it uploaded: its past attestations
// name those logs and outputs. A builder without a consumer is no error.
func (q *Queue) RemoveBuilder(ctx context.Context, builder lantern.Digest) error {
	if builder.IsZero() {
		return errors.New("remove builder: key id is empty")
	}
	name := ConsumerName(builder)
	err := q.js.DeleteConsumer(ctx, StreamJobs, name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("remove builder %s: delete consumer %s: %w", builder, name, err)
	}
	q.mu.Lock()
	delete(q.builders, name)
	q.mu.Unlock()
	return nil
}

func (q *Queue) recordBuilder(name string, builder lantern.Digest) {
	q.mu.Lock()
	q.builders[name] = builder
	q.mu.Unlock()
}

// JobConsumer hands one builder's jobs to one worker process. Every worker
// of a builder has its own JobConsumer on the same durable consumer; each
// job goes to one of them.
type JobConsumer struct {
	q       *Queue
	cons    jetstream.Consumer
	builder lantern.Digest

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	pulls   sync.WaitGroup // Next calls in flight
}

// Jobs returns a consumer of builder's jobs, bound to the durable consumer
// that the scheduler's EnsureBuilder made; ErrUnknownBuilder if there is
// none.
func (q *Queue) Jobs(ctx context.Context, builder lantern.Digest) (*JobConsumer, error) {
	if builder.IsZero() {
		return nil, errors.New("jobs: builder key id is empty")
	}
	name := ConsumerName(builder)
	c, err := q.js.Consumer(ctx, StreamJobs, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("jobs of builder %s: %w (the scheduler adds builders)", builder, ErrUnknownBuilder)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("jobs of builder %s: %w: the stream %s does not exist; start the farm's scheduler, which sets the farm up", builder, ErrNotSetUp, StreamJobs)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs of builder %s: consumer %s: %w", builder, name, err)
	}
	if owner, err := builderFromMetadata(name, c.CachedInfo().Config.Metadata); err == nil && owner != builder {
		return nil, fmt.Errorf("jobs of builder %s: consumer %s belongs to builder %s", builder, name, owner)
	}
	return &JobConsumer{q: q, cons: c, builder: builder, closing: make(chan struct{})}, nil
}

// Next waits for the builder's next job and returns it. The job is the
// caller's until it acks, naks or terminates it, or stops sending
// InProgress heartbeats for longer than the ack wait. Next keeps waiting
// through disconnects and server restarts. It returns ctx's error when ctx
// ends, ErrClosed after Close, an error wrapping nats.ErrConnectionClosed
// once the Queue is closed, and ErrUnknownBuilder when the builder's
// consumer has been deleted. A job message that is not a job is terminated
// and skipped.
func (c *JobConsumer) Next(ctx context.Context) (*JobMsg, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pulls.Add(1)
	c.mu.Unlock()
	defer c.pulls.Done()

	log := c.q.log.With("builder", c.builder.Short())
	var retry backoff
	for {
		m, err := c.q.fetchOne(ctx, c.cons, c.closing)
		if stop := c.stopped(ctx); stop != nil {
			if m != nil {
				_ = m.Nak() // not ours any more: straight to another worker
			}
			return nil, stop
		}
		if err != nil {
			if _, cerr := c.q.js.Consumer(ctx, StreamJobs, ConsumerName(c.builder)); errors.Is(cerr, jetstream.ErrConsumerNotFound) {
				return nil, fmt.Errorf("next job of builder %s: %w", c.builder, ErrUnknownBuilder)
			}
			log.Warn("fetching a job failed; retrying", "err", err)
			if !retry.wait(ctx) {
				return nil, ctx.Err()
			}
			continue
		}
		retry.reset()
		if m == nil {
			continue
		}
		jm, err := c.q.jobMsg(m)
		if err != nil {
			log.Warn("terminating a job message that is not a job", "subject", m.Subject(), "err", err)
			_ = m.TermWithReason("not a lantern job: " + err.Error())
			continue
		}
		return jm, nil
	}
}

// stopped returns why Next must stop, or nil.
func (c *JobConsumer) stopped(ctx context.Context) error {
	select {
	case <-c.closing:
		return ErrClosed
	default:
	}
	if c.q.isClosing() {
		if last := c.q.nc.LastError(); last != nil {
			// The server closed it: revoked credentials, most likely.
			return fmt.Errorf("next job: %w: %v", ErrConnClosed, last)
		}
		return fmt.Errorf("next job: %w", ErrConnClosed)
	}
	return ctx.Err()
}

// Close stops the consumer: a Next in flight returns ErrClosed, and a job
// it was just receiving is nak'd for another worker. Jobs already returned
// by Next stay the caller's, to ack, nak or terminate.
func (c *JobConsumer) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.closing)
	}
	c.mu.Unlock()
	c.pulls.Wait()
}

// JobMsg is a job delivered to a worker.
type JobMsg struct {
	Job lantern.Job
	// Deliveries counts the deliveries of the job to this builder, this
	// one included: 2 or more means a worker of the builder had it before
	// and did not finish.
	Deliveries int
	// Seq is the job message's sequence in LANTERN_JOBS.
	Seq uint64

	nc  *nats.Conn
	q   *Queue
	msg jetstream.Msg

	mu      sync.Mutex
	settled bool
}

func (q *Queue) jobMsg(m jetstream.Msg) (*JobMsg, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	jm := &JobMsg{Deliveries: int(md.NumDelivered), Seq: md.Sequence.Stream, nc: q.nc, q: q, msg: m}
	if err := json.Unmarshal(m.Data(), &jm.Job); err != nil {
		return nil, err
	}
	if jm.Job.ID == "" {
		return nil, errors.New("job has no id")
	}
	return jm, nil
}

// The bodies of JetStream's ack protocol.
var (
	ackAck      = []byte("+ACK")
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
	ackTerm     = []byte("+TERM")
)

// InProgress tells the server the job is still being worked on, which
// restarts its ack wait. Send it more often than the ack wait during a long
// build. It returns when the server has confirmed it.
func (m *JobMsg) InProgress(ctx context.Context) error {
	if err := m.reply(ctx, ackProgress, false); err != nil {
		return fmt.Errorf("job %s in progress: %w", m.Job.ID, err)
	}
	return nil
}

// Ack marks the job done for this builder (its result is published); it
// returns when the server has confirmed it, after which the job is never
// redelivered to the builder.
func (m *JobMsg) Ack(ctx context.Context) error {
	if err := m.reply(ctx, ackAck, true); err != nil {
		return fmt.Errorf("ack job %s: %w", m.Job.ID, err)
	}
	return nil
}

// Nak gives the job back to be redelivered, to this or another worker of
// the builder, after delay (at once for 0). It counts as a delivery towards
// the consumer's max deliver.
func (m *JobMsg) Nak(ctx context.Context, delay time.Duration) error {
	body := ackNak
	if delay > 0 {
		body = fmt.Appendf(nil, "%s {\"delay\": %d}", ackNak, delay.Nanoseconds())
	}
	if err := m.reply(ctx, body, true); err != nil {
		return fmt.Errorf("nak job %s: %w", m.Job.ID, err)
	}
	return nil
}

// Term tells the server never to deliver the job to this builder again,
// whatever max deliver says: for a job that can never be done.
func (m *JobMsg) Term(ctx context.Context) error {
	if err := m.reply(ctx, ackTerm, true); err != nil {
		return fmt.Errorf("terminate job %s: %w", m.Job.ID, err)
	}
	return nil
}

// reply sends one ack-protocol message as a request, so that the server
// confirms it; the jetstream package confirms only acks (DoubleAck) and
// sends naks, terms and heartbeats blind. final marks the message settled.
func (m *JobMsg) reply(ctx context.Context, body []byte, final bool) error {
	m.mu.Lock()
	settled := m.settled
	m.mu.Unlock()
	if settled {
		return ErrSettled
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ackTimeout)
		defer cancel()
	}
	// The consumer's leader may be away (a node of a cluster lost, a new
	// leader being elected): tried again until it answers. The server
	// answers an ack of a job already acked too, so a repeat is harmless.
	err := m.q.retry(ctx, "ack protocol "+string(body[:min(4, len(body))])+" of job "+m.Job.ID, attemptTimeout, func(ctx context.Context) error {
		_, err := m.nc.RequestWithContext(ctx, m.msg.Reply(), body)
		return err
	})
	if err != nil {
		return err
	}
	if final {
		m.mu.Lock()
		m.settled = true
		m.mu.Unlock()
	}
	return nil
}

// BuilderQueue reads where builder's queue stands from its durable
// consumer: jobs not delivered yet, jobs a worker holds, and the workers'
// pulls waiting now (the server drops the pulls of a worker that went
// away). ErrUnknownBuilder if the builder has no consumer.
func (q *Queue) BuilderQueue(ctx context.Context, builder lantern.Digest) (lantern.BuilderQueue, error) {
	name := ConsumerName(builder)
	c, err := q.js.Consumer(ctx, StreamJobs, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return lantern.BuilderQueue{}, fmt.Errorf("queue of builder %s: %w", builder, ErrUnknownBuilder)
	}
	if err != nil {
		return lantern.BuilderQueue{}, fmt.Errorf("queue of builder %s: consumer %s: %w", builder, name, err)
	}
	// Consumer fetched the info just now; CachedInfo is that answer.
	info := c.CachedInfo()
	bq := lantern.BuilderQueue{Queued: int(info.NumPending), Building: info.NumAckPending, Waiting: info.NumWaiting}
	if t := info.Delivered.Last; t != nil {
		bq.LastDelivered = t.UTC()
	}
	if t := info.AckFloor.Last; t != nil {
		bq.LastAnswered = t.UTC()
	}
	return bq, nil
}
