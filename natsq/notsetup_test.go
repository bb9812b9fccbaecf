package natsq_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq"
)

// TestWorkerOnAFarmNotSetUp: a builder's connection creates nothing; on a
// farm whose scheduler never set it up, it says what is missing.
func TestWorkerOnAFarmNotSetUp(t *testing.T) {
	f := natstest.Start(t)
	b := lantern.DigestOf([]byte("lonely builder"))
	q := f.Builder(b, natsq.Config{})
	_, err := q.Jobs(t.Context(), b)
	if !errors.Is(err, natsq.ErrNotSetUp) || !strings.Contains(err.Error(), natsq.StreamJobs) {
		t.Errorf("Jobs() on a farm not set up = %v, want ErrNotSetUp naming %s", err, natsq.StreamJobs)
	}
	_, err = q.PutObject(t.Context(), "log", strings.NewReader("x"))
	if !errors.Is(err, natsq.ErrNotSetUp) || !strings.Contains(err.Error(), natsq.BuilderBucket(b)) {
		t.Errorf("PutObject() on a farm not set up = %v, want ErrNotSetUp naming %s", err, natsq.BuilderBucket(b))
	}
	// And it made nothing on the way.
	s := f.Connect(f.SchedulerConfig(natsq.Config{}))
	if _, err := s.Jobs(t.Context(), b); !errors.Is(err, natsq.ErrNotSetUp) {
		t.Errorf("after the builder's attempts, Jobs() = %v: something was set up", err)
	}
}

// FuzzRedactURL: whatever a user, password or token holds, none of it is
// in the redacted URL.
func FuzzRedactURL(f *testing.F) {
	f.Add("nats://", "bob", "hunter2secret", "127.0.0.1:4222")
	f.Add("tls://", "", "tok3n-secret", "farm.example.org:4222")
	f.Add("", "u", "pa/ss@wo:rd", "[::1]:4222")
	f.Fuzz(func(t *testing.T, scheme, user, pass, host string) {
		// Skipped: a password that the redacted URLs hold anyway, made of
		// their scheme, "redacted@" and host (a password "@host" is in
		// "redacted@host" without being leaked).
		redacted := "nats://redacted@x," + scheme + "redacted@" + host + ",nats://y"
		if len(pass) < 6 || strings.Contains(scheme+user+host, pass) || strings.Contains(redacted, pass) || strings.ContainsAny(user+pass+host+scheme, ",") || strings.Contains(host, "@") {
			t.Skip()
		}
		url := scheme + user + ":" + pass + "@" + host
		for _, u := range []string{url, "nats://a:1@x," + url, url + ",nats://y"} {
			if got := natsq.RedactURL(u); strings.Contains(got, pass) {
				t.Fatalf("RedactURL(%q) = %q: the password is in it", u, got)
			}
		}
	})
}
