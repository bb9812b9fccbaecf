package dashboard

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
)

// TestLogsFromNATS: the build logs come from the farm's real object store,
// NATS JetStream's, where workers put them: a builder uploads to its own
// bucket, and the dashboard reads through the scheduler's connection.
func TestLogsFromNATS(t *testing.T) {
	nf := natstest.Start(t)
	q := nf.Scheduler(natsq.Config{})
	if err := q.EnsureBuilder(t.Context(), alice.ID(), true); err != nil {
		t.Fatal(err)
	}
	w := nf.Builder(alice.ID(), natsq.Config{})

	f := newFixture(t)
	const logText = "step 1: go install -trimpath\n<script>alert(1)</script>\nok\n"
	if _, err := w.PutObject(t.Context(), "build.log", strings.NewReader(logText)); err != nil {
		t.Fatal(err)
	}
	job := f.claim("example.org/logged", "v1.0.0", nil)
	stored := f.rebuilt(job, alice, "bin", "output", time.Minute, logText)
	lost := f.rebuilt(job, bob, "bin", "output", time.Minute, "a log that never reached NATS\n")

	h, err := New(Config{Store: f.st, Objects: q})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, h, "/attestations/"+stored.Envelope.String())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the attestation = %d", resp.StatusCode)
	}
	mustContain(t, "the attestation page", body, "step 1: go install -trimpath\n&lt;script&gt;alert(1)&lt;/script&gt;\nok\n</pre>")
	_, body = get(t, h, "/attestations/"+lost.Envelope.String())
	mustContain(t, "a lost log's page", text(body), "The log could not be read from the farm's object store.")
}
