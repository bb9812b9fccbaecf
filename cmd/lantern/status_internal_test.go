package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// TestStatusHostileFarm: lantern status prints what a farm says (builder
// names, queue errors, sources, labels, verdicts, messages) without its
// terminal escapes or lines of its own.
func TestStatusHostileFarm(t *testing.T) {
	const evil = "\x1b[2J\x1b[H\r\nFarm http://127.0.0.1:8080  threshold 1\u202e"
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	u := &scheduler.Unreachable{Threshold: 2, Builders: 1, Message: "cannot be reached" + evil}
	st := &scheduler.Status{
		Threshold:   2,
		Unreachable: u,
		Builders:    []scheduler.BuilderStatus{{ID: lantern.DigestOf([]byte("b1")), Name: "builder-1" + evil, Added: now, QueueError: "no queue" + evil}},
		Sources: []scheduler.SourceStatus{{Name: "example.org/hello" + evil, Version: "v1.0.0" + evil, Added: now, Verdicts: []scheduler.VerdictView{{
			Verdict:     lantern.Verdict{Label: "hello" + evil, Status: lantern.StatusPending + lantern.Status(evil), Threshold: 2},
			Unreachable: u,
		}}}},
	}
	var out bytes.Buffer
	if err := writeStatus(&out, "http://farm.example", st, false, now); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\r\u202e") {
		t.Errorf("status printed a farm's control characters: %q", out.String())
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "Farm http://127.0.0.1:8080") {
			t.Errorf("status printed a line the farm wrote: %q", out.String())
		}
	}
}
