package dashboard

import (
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
)

// TestSourcePageBuilding: a builder that says it is building a job it has
// not answered shows as building since then; the others stay queued.
func TestSourcePageBuilding(t *testing.T) {
	f := newFixture(t)
	job := f.claim("example.org/tool", "v2.0.0", nil)
	since := t0.Add(90 * time.Second)
	h, err := New(Config{Store: f.st, Objects: f.objects, Threshold: f.threshold,
		Building: func(b lantern.Digest, id string) (time.Time, bool) {
			return since, b == bob.ID() && id == job.ID
		}})
	if err != nil {
		t.Fatal(err)
	}
	_, body := get(t, h, "/sources/example.org/tool@v2.0.0")
	txt := text(body)
	mustContain(t, "tool's page", txt, "Builders not done",
		alice.ID().Short()+" queued", bob.ID().Short()+" building", carol.ID().Short()+" queued")
	mustContain(t, "tool's HTML", body, `<span class="state building">building</span>`, "data-live")
}
