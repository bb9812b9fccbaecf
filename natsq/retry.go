package natsq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// On a NATS cluster a node can go away at any moment: its clients reconnect
// to another, and a stream or consumer whose leader it was elects a new one
// within seconds. A request sent meanwhile finds nobody to answer it (no
// responders), or its answer is lost with the node (a timeout). What a
// worker or the scheduler must not lose that way — acks, heartbeats,
// results, uploads — is tried again until it is confirmed: each of those is
// safe to repeat (an ack of an acked job is answered again, a result or
// object is stored once by its digest).

const (
	// attemptTimeout bounds one try of a request whose answer may have
	// been lost with a node.
	attemptTimeout = 5 * time.Second
	// rideOut bounds the retries of a call whose ctx has no deadline: long
	// enough for a cluster to elect new leaders on a loaded machine.
	rideOut = 2 * time.Minute
)

// Error codes of the NATS server that mean "not now": its JetStream is
// between leaders.
const (
	jsErrClusterNotAvail  jetstream.ErrorCode = 10008
	jsErrClusterNotLeader jetstream.ErrorCode = 10009
	jsErrStreamOffline    jetstream.ErrorCode = 10118
	jsErrConsumerOffline  jetstream.ErrorCode = 10119
	// jsErrReplicasNotSupported is "replicas > 1 not supported in
	// non-clustered mode".
	jsErrReplicasNotSupported jetstream.ErrorCode = 10074
	// jsErrNoPeers is "insufficient resources" / no suitable peers for a
	// placement (fewer servers than replicas).
	jsErrNoPeers jetstream.ErrorCode = 10005
)

// transient reports whether err may be the loss of a node or a leader
// election, after which the same call can succeed.
func transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, jetstream.ErrNoHeartbeat) {
		return true
	}
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode {
		case jsErrClusterNotAvail, jsErrClusterNotLeader, jsErrStreamOffline, jsErrConsumerOffline:
			return true
		}
		return ae.Code == 503
	}
	return false
}

// retry calls op with a context of at most attempt until it succeeds, fails
// with an error that is not transient, or ctx ends (rideOut if ctx has no
// deadline); it then returns op's last error. Waits between tries grow
// from 100ms to 5s.
func (q *Queue) retry(ctx context.Context, what string, attempt time.Duration, op func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rideOut)
		defer cancel()
	}
	var b backoff
	for tries := 1; ; tries++ {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := op(actx)
		cancel()
		if err == nil {
			if tries > 1 {
				q.log.Info("nats: done after retrying", "what", what, "tries", tries)
			}
			return nil
		}
		if !transient(err) || ctx.Err() != nil || q.isClosing() {
			return err
		}
		q.log.Warn("nats: a node or leader may be away; retrying", "what", what, "try", tries, "err", err)
		if !b.wait(ctx) {
			return err
		}
	}
}

// explainReplicas adds to an error of creating a stream or bucket with
// Config.Replicas what to do when the server cannot have that many.
func explainReplicas(err error, replicas int) error {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.ErrorCode {
	case jsErrReplicasNotSupported:
		return fmt.Errorf("%w: %d replicas need a NATS cluster of at least %d servers, and this server is not in a cluster; run NATS as a cluster (--nats-cluster, --nats-routes) or use --nats-replicas 1", err, replicas, replicas)
	case jsErrNoPeers, jsErrClusterNotAvail:
		return fmt.Errorf("%w: %d replicas need %d servers of the NATS cluster up with JetStream; start them, or lower --nats-replicas", err, replicas, replicas)
	}
	return err
}

// placementWait bounds how long place waits for a cluster's servers to be
// seen up.
const placementWait = time.Minute

// placeAttempt is how long one attempt to create or update a stream or
// bucket may take.
const placeAttempt = 10 * time.Second

// place calls op, which creates or updates a stream or bucket, until it
// succeeds, fails otherwise than for a node or a placement, or placementWait
// has passed: a cluster that has just started (or lost a node) can report
// a server offline for a while, on a loaded machine, though it is up.
func (q *Queue) place(ctx context.Context, what string, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, placementWait)
	defer cancel()
	var b backoff
	for tries := 1; ; tries++ {
		// An attempt of its own time: a request made before the cluster
		// has its leaders gets no answer, and would otherwise wait out
		// the whole placementWait.
		actx, acancel := context.WithTimeout(ctx, placeAttempt)
		err := op(actx)
		acancel()
		var ae *jetstream.APIError
		noPeers := errors.As(err, &ae) && ae.ErrorCode == jsErrNoPeers && q.cfg.Replicas > 1
		if err == nil || !(noPeers || transient(err)) || q.isClosing() {
			return err
		}
		q.log.Warn("nats: the cluster cannot place it yet; retrying", "what", what, "try", tries, "err", err)
		if !b.wait(ctx) {
			return err
		}
	}
}
