package natsq_test

import (
	"fmt"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
)

// FuzzParseBuilding: whatever a builder sends on its building subject,
// ParseBuilding reads nothing but the exact message PublishBuilding writes,
// of the subject's builder.
func FuzzParseBuilding(f *testing.F) {
	b := lantern.DigestOf([]byte("builder"))
	subj, _ := natsq.BuildingSubject(b)
	f.Add(subj, []byte(`{"job":"j0123456789abcdef0123456789abcdef","building":true}`))
	f.Add(subj, []byte(`{"job":"j0123456789abcdef0123456789abcdef","building":false}`))
	f.Add(subj, []byte(`{"job":"j0123456789abcdef0123456789abcdef","building":true}`+"\n"))
	f.Add(subj+".x", []byte(`{"job":"j0123456789abcdef0123456789abcdef","building":true}`))
	f.Add("lantern.building.zz", []byte(`{}`))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		builder, job, building, err := natsq.ParseBuilding(subject, data)
		if err != nil {
			return
		}
		if want, _ := natsq.BuildingSubject(builder); subject != want {
			t.Fatalf("read builder %s from subject %q", builder, subject)
		}
		if want := fmt.Sprintf(`{"job":%q,"building":%t}`, job, building); string(data) != want {
			t.Fatalf("read %q as job %q, %t: not what PublishBuilding writes", data, job, building)
		}
	})
}
