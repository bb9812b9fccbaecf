package scheduler

import (
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
)

// TestClaimLimiter: a key takes its burst at once, then one claim per
// 60/perMinute seconds; the wait it is told is what it must wait; keys
// do not share their buckets.
func TestClaimLimiter(t *testing.T) {
	const perMinute, burst = 60, 3
	l := newClaimLimiter(perMinute, burst)
	k1, k2 := lantern.DigestOf([]byte("k1")), lantern.DigestOf([]byte("k2"))
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i := range burst {
		if ok, _ := l.take(k1, now); !ok {
			t.Fatalf("take %d of the burst refused", i)
		}
	}
	ok, wait := l.take(k1, now)
	if ok || wait != time.Second {
		t.Fatalf("take past the burst = %v, %v; want refused, wait 1s", ok, wait)
	}
	if ok, _ := l.take(k2, now); !ok {
		t.Errorf("another key's take refused: keys share a bucket")
	}
	if ok, _ := l.take(k1, now.Add(wait/2)); ok {
		t.Errorf("take before the wait is over allowed")
	}
	if ok, _ := l.take(k1, now.Add(wait)); !ok {
		t.Errorf("take once the wait is over refused")
	}
	// A long pause refills to the burst, no more.
	later := now.Add(time.Hour)
	for i := range burst {
		if ok, _ := l.take(k1, later); !ok {
			t.Fatalf("take %d after an hour refused", i)
		}
	}
	if ok, _ := l.take(k1, later); ok {
		t.Errorf("more than the burst after a long pause")
	}
	// A clock that goes back gives nothing.
	if ok, _ := l.take(k1, now); ok {
		t.Errorf("take at an earlier time allowed")
	}
	if ok, _ := newClaimLimiter(-1, 0).take(k1, now); !ok {
		t.Errorf("no limit refused a claim")
	}
	if n := len(l.buckets); n != 2 {
		t.Errorf("%d buckets, want 2: one per key that took", n)
	}
}

func BenchmarkClaimLimiter(b *testing.B) {
	l := newClaimLimiter(1<<30, 1<<30)
	k := lantern.DigestOf([]byte("k"))
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l.take(k, now)
	}
}
