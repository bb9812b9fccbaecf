package dashboard

import (
	"strings"
	"testing"

	"github.com/lanternfarm/lantern/scheduler"
)

// TestUnreachableOnSourcePage: a pending verdict on a farm with builders
// enough says nothing more; once the farm has fewer builders than the
// threshold (two of three revoked), its source page says the verdict
// cannot be reached, and so does a published label nobody answered yet.
func TestUnreachableOnSourcePage(t *testing.T) {
	f := newFixture(t)
	newScene(f)
	h := f.handler()
	const want = "cannot be reached: threshold 2, the farm has 1 builder (lantern builder add, or --threshold)"

	_, body := get(t, h, "/sources/example.org/hello@v1.2.0")
	mustContain(t, "hello's page", text(body), "hello pending 1/2")
	if txt := text(body); strings.Contains(txt, "cannot be reached") {
		t.Errorf("hello's page on a farm of three says the verdict cannot be reached:\n%s", txt)
	}

	for _, b := range []scheduler.BuilderRecord{
		{ID: bob.ID(), PublicKey: bob.Public().MarshalPEM(), Added: t0, Revoked: t0.Add(1)},
		{ID: carol.ID(), PublicKey: carol.Public().MarshalPEM(), Added: t0, Revoked: t0.Add(1)},
	} {
		if err := f.st.PutBuilder(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	_, body = get(t, h, "/sources/example.org/hello@v1.2.0")
	mustContain(t, "hello's page on a farm of one", text(body), "This verdict "+want)
	_, body = get(t, h, "/sources/example.org/tool@v2.0.0")
	mustContain(t, "tool's page on a farm of one", text(body), "No builder has answered yet", "This verdict "+want)
}
