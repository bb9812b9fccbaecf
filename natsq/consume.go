package natsq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
)

const (
	// pullWait is how long one pull request waits on the server for a
	// message before it is renewed. A pull returns as soon as a message is
	// there; the wait only bounds how long a lost request goes unnoticed.
	pullWait = 30 * time.Second
	// settleTimeout bounds acking a batch, retries included (a consumer
	// whose leader was lost elects another).
	settleTimeout = time.Minute
)

// ConsumeClaims calls handle with batches of source claims from the
// scheduler's own durable consumer (see [SchedulerConsumer]) until ctx ends,
// and then returns nil. See [Queue.ConsumeResults].
func (q *Queue) ConsumeClaims(ctx context.Context, handle lantern.BatchHandler) error {
	return q.consumeBatches(ctx, StreamClaims, SchedulerConsumer(q.cfg.SchedulerName, "claims"), handle)
}

// ConsumeResults calls handle with batches of attestations from the
// scheduler's own durable consumer until ctx ends, and then returns nil:
// every scheduler of a farm reads every result. A batch
// is what is there, up to Config.Batch messages: a lone message is handed
// over at once. Message.Deliveries is JetStream's delivery count (1 the
// first time). Each message is acked (and the server has confirmed the
// ack) when handle returns nil or a *lantern.Permanent error for it, and
// nak'd to be redelivered after Config.NakDelay otherwise. It keeps going
// through disconnects and server restarts; it returns an error only when
// the consumer cannot be made or the connection is closed.
func (q *Queue) ConsumeResults(ctx context.Context, handle lantern.BatchHandler) error {
	return q.consumeBatches(ctx, StreamResults, SchedulerConsumer(q.cfg.SchedulerName, "results"), handle)
}

func (q *Queue) consumeBatches(ctx context.Context, stream, name string, handle lantern.BatchHandler) error {
	return q.consume(ctx, stream, name, func(ctx context.Context, msgs []jetstream.Msg) []error {
		batch := make([]lantern.Message, len(msgs))
		for i, m := range msgs {
			batch[i] = lantern.Message{Data: m.Data(), Subject: m.Subject()}
			if md, err := m.Metadata(); err == nil {
				batch[i].Deliveries = int(md.NumDelivered)
				batch[i].Time = md.Timestamp
			}
		}
		return handle(ctx, batch)
	})
}

// schedulerConsumer is the configuration of the scheduler's durable
// consumers: from the first message, redelivered until handled.
func (q *Queue) schedulerConsumer(name string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "Lantern scheduler",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: max(1000, 2*q.cfg.Batch),
	}
}

// consume runs the fetch, handle, ack loop of one of the scheduler's
// consumers until ctx ends.
func (q *Queue) consume(ctx context.Context, stream, name string, handle func(context.Context, []jetstream.Msg) []error) error {
	return q.consumeWith(ctx, stream, q.schedulerConsumer(name), q.cfg.Batch, q.cfg.NakDelay, handle)
}

// consumeWith runs the fetch, handle, ack loop of the consumer ccfg of
// stream, up to batch messages at a time, until ctx ends; a message whose
// handling failed is redelivered after nakDelay.
func (q *Queue) consumeWith(ctx context.Context, stream string, ccfg jetstream.ConsumerConfig, batch int, nakDelay time.Duration, handle func(context.Context, []jetstream.Msg) []error) error {
	name := ccfg.Durable
	// On a cluster whose leaders are being elected (just started, or a
	// node lost) the consumer is made once they are there.
	var cons jetstream.Consumer
	err := q.retry(ctx, "create consumer "+name, attemptTimeout, func(ctx context.Context) error {
		var err error
		cons, err = q.js.CreateOrUpdateConsumer(ctx, stream, ccfg)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consume %s: create consumer %s: %w", stream, name, err)
	}
	log := q.log.With("stream", stream, "consumer", name)
	var retry backoff
	// A batch's acks go out while the next batch is fetched and handled;
	// one batch settles at a time.
	var settling sync.WaitGroup
	defer settling.Wait()
	for {
		// A scheduler that holds its name takes messages only while it
		// does; a pull is cut short when the hold is lost.
		held, ok := q.awaitName(ctx)
		if !ok {
			return nil
		}
		msgs, err := q.fetch(ctx, cons, batch, held)
		if ctx.Err() != nil || q.isClosing() {
			// Fetched but not handled: give them straight back.
			for _, m := range msgs {
				_ = m.Nak()
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: %w", stream, nats.ErrConnectionClosed)
		}
		if err != nil {
			log.Warn("fetch failed; retrying", "err", err)
			if !retry.wait(ctx) {
				return nil
			}
			// The consumer may have gone with the server's state; making
			// it again is harmless when it is there.
			if c, err := q.js.CreateOrUpdateConsumer(ctx, stream, ccfg); err == nil {
				cons = c
			}
			continue
		}
		retry.reset()
		if len(msgs) == 0 {
			continue
		}
		if held, _ := q.NameHeld(); !held {
			// The hold lapsed while the pull waited: what it brought goes
			// back, for the name's holder.
			for _, m := range msgs {
				_ = m.Nak()
			}
			continue
		}
		errs := handle(ctx, msgs)
		settling.Wait()
		settling.Go(func() { q.settle(ctx, log, msgs, errs, nakDelay) })
	}
}

// fetch waits for a message (up to pullWait, until ctx ends or stop is
// closed) and returns it with whatever else is already there, up to max
// messages. It returns no messages and no error when the wait ended empty.
func (q *Queue) fetch(ctx context.Context, cons jetstream.Consumer, max int, stop <-chan struct{}) ([]jetstream.Msg, error) {
	first, err := q.fetchOne(ctx, cons, stop)
	if first == nil {
		return nil, err
	}
	msgs := []jetstream.Msg{first}
	if max > 1 {
		// Errors here resurface on the next fetch; the batch in hand is
		// handled either way.
		if b, err := cons.FetchNoWait(max - 1); err == nil {
			for m := range b.Messages() {
				msgs = append(msgs, m)
			}
		}
	}
	return msgs, nil
}

// fetchOne pulls one message, cut short when ctx ends, stop is closed or
// the queue closes.
//
// A pull is not cut short when the connection comes back after a drop: a
// pull sent while disconnected is sent on reconnecting and stands, and
// abandoning it then could lose a message delivered to it in the meantime
// (until the ack wait brings it back). A pull the server forgot, because it
// restarted, ends with its "server shutdown" status or, after a crash, with
// missed heartbeats.
func (q *Queue) fetchOne(ctx context.Context, cons jetstream.Consumer, stop <-chan struct{}) (jetstream.Msg, error) {
	fctx, cancel := context.WithTimeout(ctx, pullWait)
	defer cancel()
	go func() {
		select {
		case <-stop:
		case <-q.stopping:
		case <-fctx.Done():
		}
		cancel()
	}()
	b, err := cons.Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		return nil, err
	}
	if m, ok := <-b.Messages(); ok {
		return m, nil
	}
	if err := b.Error(); err != nil && fctx.Err() == nil {
		return nil, err
	}
	return nil, nil
}

// settle acks the messages whose handling succeeded or failed for good, and
// naks the others.
func (q *Queue) settle(ctx context.Context, log *slog.Logger, msgs []jetstream.Msg, errs []error, nakDelay time.Duration) {
	if len(errs) != len(msgs) {
		log.Error("handler returned a wrong number of results; the batch will be redelivered", "messages", len(msgs), "results", len(errs))
		errs = make([]error, len(msgs))
		for i := range errs {
			errs[i] = errors.New("no result from the handler")
		}
	}
	// Acks go out even when ctx has just ended: the work is done.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, m := range msgs {
		var perm *lantern.Permanent
		switch err := errs[i]; {
		case err == nil:
		case errors.As(err, &perm):
			log.Debug("dropping message that cannot be handled", "subject", m.Subject(), "err", err)
		default:
			log.Warn("message will be redelivered", "subject", m.Subject(), "err", err)
			if err := m.NakWithDelay(nakDelay); err != nil {
				log.Warn("nak failed; message will be redelivered after the ack wait", "subject", m.Subject(), "err", err)
			}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			// A confirmed ack: a handled message must not come back, not
			// even across a server restart.
			err := q.retry(sctx, "ack "+m.Subject(), attemptTimeout, func(ctx context.Context) error {
				_, err := q.nc.RequestWithContext(ctx, m.Reply(), ackAck)
				return err
			})
			if err != nil {
				log.Warn("ack failed; message will be redelivered", "subject", m.Subject(), "err", err)
			}
		})
	}
	wg.Wait()
}

// backoff paces retries: 100ms, doubling up to 5s.
type backoff struct{ d time.Duration }

func (b *backoff) reset() { b.d = 0 }

// wait sleeps for the next delay and reports false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	b.d = min(max(2*b.d, 100*time.Millisecond), 5*time.Second)
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// maxDeliverAdvisory is the part of JetStream's
// io.nats.jetstream.advisory.v1.max_deliver advisory that a dead letter
// needs.
type maxDeliverAdvisory struct {
	Type       string    `json:"type"`
	Time       time.Time `json:"timestamp"`
	Stream     string    `json:"stream"`
	Consumer   string    `json:"consumer"`
	StreamSeq  uint64    `json:"stream_seq"`
	Deliveries uint64    `json:"deliveries"`
}

// ConsumeDeadLetters calls handle for every job a builder's consumer gave
// up on, read from LANTERN_DEAD with the scheduler's own durable consumer,
// until ctx ends, and then returns nil. An advisory is acked when handle
// returns nil or a *lantern.Permanent error and redelivered otherwise.
// Advisories that name no job in LANTERN_JOBS any more, or a consumer that
// is not a builder's, are logged and dropped.
func (q *Queue) ConsumeDeadLetters(ctx context.Context, handle func(ctx context.Context, d lantern.DeadLetter) error) error {
	return q.consume(ctx, StreamDead, SchedulerConsumer(q.cfg.SchedulerName, "dead"), func(ctx context.Context, msgs []jetstream.Msg) []error {
		data := make([][]byte, len(msgs))
		for i, m := range msgs {
			data[i] = m.Data()
		}
		return q.deadLetters(ctx, data, handle)
	})
}

// deadLetters turns each advisory into a dead letter for handle, and returns
// what each came to: an error to try it again, nil when it was handled or
// makes no dead letter.
func (q *Queue) deadLetters(ctx context.Context, advisories [][]byte, handle func(ctx context.Context, d lantern.DeadLetter) error) []error {
	errs := make([]error, len(advisories))
	for i, a := range advisories {
		d, ok, err := q.deadLetter(ctx, a)
		switch {
		case err != nil:
			errs[i] = err
		case ok:
			errs[i] = handle(ctx, d)
		}
	}
	return errs
}

// deadLetter turns a max-deliveries advisory into a dead letter. It
// reports false, after logging why, for an advisory there is nothing to do
// about, and an error when it could not find out (to try again).
func (q *Queue) deadLetter(ctx context.Context, data []byte) (lantern.DeadLetter, bool, error) {
	var a maxDeliverAdvisory
	if err := json.Unmarshal(data, &a); err != nil || a.StreamSeq == 0 {
		q.log.Warn("dropping malformed max-deliveries advisory", "err", err, "data", truncate(data))
		return lantern.DeadLetter{}, false, nil
	}
	log := q.log.With("consumer", a.Consumer, "seq", a.StreamSeq)
	if a.Stream != StreamJobs || !strings.HasPrefix(a.Consumer, builderConsumerPrefix) {
		log.Debug("ignoring max-deliveries advisory of a consumer that is not a builder's", "stream", a.Stream)
		return lantern.DeadLetter{}, false, nil
	}
	builder, err := q.builderOf(ctx, a.Consumer)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, errNoBuilder):
		log.Warn("dropping dead letter: cannot tell its builder", "err", err)
		return lantern.DeadLetter{}, false, nil
	case err != nil:
		return lantern.DeadLetter{}, false, fmt.Errorf("dead letter of %s: %w", a.Consumer, err)
	}
	jobs, err := q.js.Stream(ctx, StreamJobs)
	if err != nil {
		return lantern.DeadLetter{}, false, fmt.Errorf("dead letter of %s: %w", a.Consumer, err)
	}
	raw, err := jobs.GetMsg(ctx, a.StreamSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		log.Warn("dropping dead letter: its job is no longer in " + StreamJobs)
		return lantern.DeadLetter{}, false, nil
	case err != nil:
		return lantern.DeadLetter{}, false, fmt.Errorf("dead letter of %s: get job %d: %w", a.Consumer, a.StreamSeq, err)
	}
	var job lantern.Job
	if err := json.Unmarshal(raw.Data, &job); err != nil || job.ID == "" {
		job.ID = raw.Header.Get(jetstream.MsgIDHeader)
	}
	if job.ID == "" {
		log.Warn("dropping dead letter: its job message has no job id", "data", truncate(raw.Data))
		return lantern.DeadLetter{}, false, nil
	}
	t := a.Time
	if t.IsZero() {
		t = time.Now().UTC()
	}
	return lantern.DeadLetter{JobID: job.ID, Builder: builder, Deliveries: int(a.Deliveries), Time: t}, true, nil
}

// errNoBuilder reports a consumer whose metadata names no builder.
var errNoBuilder = errors.New("consumer names no builder")

// builderOf returns the builder whose consumer on LANTERN_JOBS is name: from
// what EnsureBuilder recorded, or else from the consumer's metadata, which
// outlives this process.
func (q *Queue) builderOf(ctx context.Context, name string) (lantern.Digest, error) {
	q.mu.Lock()
	b, ok := q.builders[name]
	q.mu.Unlock()
	if ok {
		return b, nil
	}
	c, err := q.js.Consumer(ctx, StreamJobs, name)
	if err != nil {
		return lantern.Digest{}, err
	}
	b, err = builderFromMetadata(name, c.CachedInfo().Config.Metadata)
	if err != nil {
		return lantern.Digest{}, err
	}
	q.mu.Lock()
	q.builders[name] = b
	q.mu.Unlock()
	return b, nil
}

func builderFromMetadata(name string, md map[string]string) (lantern.Digest, error) {
	s, ok := md[MetadataBuilder]
	if !ok {
		return lantern.Digest{}, fmt.Errorf("consumer %s: no %q in its metadata: %w", name, MetadataBuilder, errNoBuilder)
	}
	b, err := lantern.ParseDigest(s)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("consumer %s: metadata %q: %v: %w", name, MetadataBuilder, err, errNoBuilder)
	}
	if ConsumerName(b) != name {
		return lantern.Digest{}, fmt.Errorf("consumer %s: metadata %q names builder %s: %w", name, MetadataBuilder, b, errNoBuilder)
	}
	return b, nil
}

// Replay calls claims with every message of LANTERN_CLAIMS, then results
// with every message of LANTERN_RESULTS, in stream order and in batches of
// up to Config.Batch, and returns when it has reached the last message each
// stream had when it started on it. Nothing is acked: replay reads with an
// ordered consumer and moves no durable consumer, and Message.Deliveries is
// 0 (a replay is not a delivery). A message whose handler
// returns a *lantern.Permanent error is skipped; any other error stops
// the replay and is returned.
func (q *Queue) Replay(ctx context.Context, claims, results lantern.BatchHandler) error {
	if err := q.replay(ctx, StreamClaims, claims); err != nil {
		return err
	}
	return q.replay(ctx, StreamResults, results)
}

// ReplayDeadLetters calls handle with every dead letter of the dead-letter
// stream, from the first, and returns when it has seen them all: a reindex
// keeps them. An advisory that makes no dead letter (its builder or its job
// is gone) is skipped.
func (q *Queue) ReplayDeadLetters(ctx context.Context, handle func(ctx context.Context, d lantern.DeadLetter) error) error {
	return q.replay(ctx, StreamDead, func(ctx context.Context, msgs []lantern.Message) []error {
		data := make([][]byte, len(msgs))
		for i, m := range msgs {
			data[i] = m.Data
		}
		return q.deadLetters(ctx, data, handle)
	})
}

func (q *Queue) replay(ctx context.Context, stream string, handle lantern.BatchHandler) error {
	s, err := q.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("replay %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay %s: %w", stream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("replay %s: %w", stream, err)
	}
	it, err := oc.Messages(jetstream.PullMaxMessages(q.cfg.Batch))
	if err != nil {
		return fmt.Errorf("replay %s: %w", stream, err)
	}
	defer it.Stop()

	batch := make([]lantern.Message, 0, q.cfg.Batch)
	seqs := make([]uint64, 0, q.cfg.Batch)
	for done := false; !done; {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("replay %s: %w", stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("replay %s: %w", stream, err)
		}
		batch = append(batch, lantern.Message{Data: m.Data(), Subject: m.Subject(), Time: md.Timestamp})
		seqs = append(seqs, md.Sequence.Stream)
		// NumPending covers a last message deleted since Info.
		done = md.Sequence.Stream >= last || md.NumPending == 0
		if len(batch) < q.cfg.Batch && !done {
			continue
		}
		errs := handle(ctx, batch)
		if len(errs) != len(batch) {
			return fmt.Errorf("replay %s: handler returned %d results for %d messages", stream, len(errs), len(batch))
		}
		for i, err := range errs {
			var perm *lantern.Permanent
			if err != nil && !errors.As(err, &perm) {
				return fmt.Errorf("replay %s: message %d: %w", stream, seqs[i], err)
			}
		}
		// Fresh slices: the handler may keep the ones it had.
		batch = make([]lantern.Message, 0, q.cfg.Batch)
		seqs = seqs[:0]
	}
	return nil
}

// truncate keeps logged message data short.
func truncate(b []byte) string {
	const max = 200
	if len(b) <= max {
		return string(b)
	}
	return string(b[:max]) + "..."
}
