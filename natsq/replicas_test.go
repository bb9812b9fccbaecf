package natsq_test

import (
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
)

// TestReplicasOnALoneServer: a farm set up with one replica, asked for
// three on a server that is in no cluster, says what is wrong and what to
// do — for its streams and for a builder's bucket — and keeps what it has.
// (Three replicas on a cluster: worker's TestClusterRidesOutLostNodes.)
func TestReplicasOnALoneServer(t *testing.T) {
	nf := natstest.Start(t)
	nf.Scheduler(natsq.Config{}) // set up with 1 replica
	b := lantern.DigestOf([]byte("builder"))
	q1 := nf.Connect(nf.SchedulerConfig(natsq.Config{}))
	if err := q1.EnsureBuilder(testCtx(t), b, true); err != nil {
		t.Fatal(err)
	}
	q3 := nf.Connect(nf.SchedulerConfig(natsq.Config{Replicas: 3}))
	err := q3.Setup(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "3 replicas need a NATS cluster") || !strings.Contains(err.Error(), "--nats-replicas 1") {
		t.Errorf("Setup with 3 replicas on a lone server = %v, want it to say a cluster is needed, or --nats-replicas 1", err)
	}
	err = q3.EnsureBuilder(testCtx(t), b, true)
	if err == nil || !strings.Contains(err.Error(), "3 replicas need a NATS cluster") {
		t.Errorf("EnsureBuilder with 3 replicas on a lone server = %v, want it to say a cluster is needed", err)
	}
	if r := streamConfig(t, q1, natsq.StreamJobs).Replicas; r != 1 {
		t.Errorf("jobs stream has %d replicas after the refused update, want 1", r)
	}
	if err := q1.Setup(testCtx(t)); err != nil {
		t.Errorf("Setup with 1 replica again = %v", err)
	}
}
