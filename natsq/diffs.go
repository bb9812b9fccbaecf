package natsq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
)

// The difference reports: what every scheduler of a farm must agree on, and
// what only one of them does. A scheduler that finds a report wanted
// publishes the request once for the farm ([Queue.WantDiff]); one scheduler
// takes it off the shared consumer scheduler-diffoscope
// ([Queue.ConsumeDiffWork]), runs diffoscope and publishes what came of it
// ([Queue.MadeDiff]); every scheduler reads that into its store through
// its own consumer ([Queue.ConsumeDiffs]).
const (
	StreamDiffs = "LANTERN_DIFFS"
	// SubjectDiffs is the prefix of the difference reports' subjects.
	SubjectDiffs = "lantern.diffs"
	// SubjectDiffsWanted is the prefix of the requests,
	// lantern.diffs.wanted.<key>.
	SubjectDiffsWanted = SubjectDiffs + ".wanted"
	// SubjectDiffsMade is the prefix of the reports made (or failed),
	// lantern.diffs.made.<key>.
	SubjectDiffsMade = SubjectDiffs + ".made"
	// ConsumerDiffoscope is the consumer of the requests that every
	// scheduler with a diffoscope shares: each request goes to one.
	ConsumerDiffoscope = "scheduler-diffoscope"
)

// WantDiff publishes a request for the difference report key (data says
// which) on lantern.diffs.wanted.<key>, unless there is one: a report is
// asked for once, however many schedulers want it.
func (q *Queue) WantDiff(ctx context.Context, key string, data []byte) error {
	return q.publishOnce(ctx, "want diff", SubjectDiffsWanted, key, data)
}

// MadeDiff publishes what came of the request key on
// lantern.diffs.made.<key>, unless something has already: the first word
// on a report is the farm's.
func (q *Queue) MadeDiff(ctx context.Context, key string, data []byte) error {
	return q.publishOnce(ctx, "made diff", SubjectDiffsMade, key, data)
}

// publishOnce publishes data on prefix.key if that subject holds no message
// yet, and waits until the stream has it; a subject that holds one is
// success.
func (q *Queue) publishOnce(ctx context.Context, what, prefix, key string, data []byte) error {
	if err := checkToken(key); err != nil {
		return fmt.Errorf("%s %q: %w", what, key, err)
	}
	subj := prefix + "." + key
	err := q.retry(ctx, what+" "+key, attemptTimeout, func(ctx context.Context) error {
		_, err := q.js.Publish(ctx, subj, data, jetstream.WithExpectStream(StreamDiffs), jetstream.WithExpectLastSequencePerSubject(0))
		if isWrongLastSeq(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, key, explainLimit(err, "--dead-letter-max-bytes"))
	}
	return nil
}

// DiffMade returns what came of the report key, and false if nothing has
// yet.
func (q *Queue) DiffMade(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkToken(key); err != nil {
		return nil, false, fmt.Errorf("diff made %q: %w", key, err)
	}
	var data []byte
	err := q.retry(ctx, "diff made "+key, attemptTimeout, func(ctx context.Context) error {
		s, err := q.js.Stream(ctx, StreamDiffs)
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(ctx, SubjectDiffsMade+"."+key)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			data = nil
			return nil
		case err != nil:
			return err
		}
		data = m.Data
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("diff made %s: %w", key, err)
	}
	return data, data != nil, nil
}

// ConsumeDiffs calls handle with batches of the reports made, from the
// scheduler's own consumer of lantern.diffs.made.>, until ctx ends; as
// [Queue.ConsumeResults].
func (q *Queue) ConsumeDiffs(ctx context.Context, handle lantern.BatchHandler) error {
	ccfg := q.schedulerConsumer(SchedulerConsumer(q.cfg.SchedulerName, "diffs"))
	ccfg.FilterSubject = SubjectDiffsMade + ".>"
	return q.consumeWith(ctx, StreamDiffs, ccfg, q.cfg.Batch, q.cfg.NakDelay, func(ctx context.Context, msgs []jetstream.Msg) []error {
		return handle(ctx, messages(msgs))
	})
}

// ReplayDiffs calls handle with every message of the difference reports'
// stream, from the first, requests and reports alike (their subjects tell
// them apart), and returns when it has seen them all; as [Queue.Replay].
func (q *Queue) ReplayDiffs(ctx context.Context, handle lantern.BatchHandler) error {
	return q.replay(ctx, StreamDiffs, handle)
}

// diffRetry is the least a request whose report could not be made (the
// object store failed) waits before it is tried again.
const diffRetry = 30 * time.Second

// diffHeartbeat is how often, at most, a scheduler running diffoscope tells
// the server it is still at it.
const diffHeartbeat = 30 * time.Second

// ConsumeDiffWork calls handle with one request for a difference report at
// a time, from the consumer scheduler-diffoscope that every scheduler with
// a diffoscope shares, until ctx ends. While handle runs, the request is
// kept with in-progress heartbeats (every third of the ack wait); it is
// acked when handle returns nil or a *lantern.Permanent error, and
// redelivered after Config.NakDelay, or 30 seconds if longer, otherwise. A scheduler that dies with a
// request leaves it to another after the ack wait.
func (q *Queue) ConsumeDiffWork(ctx context.Context, handle func(ctx context.Context, m lantern.Message) error) error {
	ccfg := q.schedulerConsumer(ConsumerDiffoscope)
	ccfg.Description = "Lantern schedulers' diffoscope runs: each request to one"
	ccfg.FilterSubject = SubjectDiffsWanted + ".>"
	return q.consumeWith(ctx, StreamDiffs, ccfg, 1, max(q.cfg.NakDelay, diffRetry), func(ctx context.Context, msgs []jetstream.Msg) []error {
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				t := time.NewTicker(min(diffHeartbeat, max(q.cfg.AckWait/3, 100*time.Millisecond)))
				defer t.Stop()
				for {
					select {
					case <-t.C:
						if err := m.InProgress(); err != nil {
							q.log.Warn("in-progress heartbeat of a difference report failed", "subject", m.Subject(), "err", err)
						}
					case <-stop:
						return
					}
				}
			}()
			errs[i] = handle(ctx, messages([]jetstream.Msg{m})[0])
			close(stop)
			<-done
		}
		return errs
	})
}

// messages turns JetStream messages into the domain's.
func messages(msgs []jetstream.Msg) []lantern.Message {
	batch := make([]lantern.Message, len(msgs))
	for i, m := range msgs {
		batch[i] = lantern.Message{Data: m.Data(), Subject: m.Subject()}
		if md, err := m.Metadata(); err == nil {
			batch[i].Deliveries = int(md.NumDelivered)
			batch[i].Time = md.Timestamp
		}
	}
	return batch
}
