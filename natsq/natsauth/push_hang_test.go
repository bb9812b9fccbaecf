package natsauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/natsq/natsauth"
)

// TestPushEndsWithoutAnswer: a push whose requests get no answer (the
// server went away, or lost a request as it restarted, and the system
// user's connection waits to reconnect, as the scheduler's does for ever)
// ends with an error, so that the scheduler tries again: a push that waited
// for ever would keep every later revocation from the server.
func TestPushEndsWithoutAnswer(t *testing.T) {
	t.Cleanup(natsauth.SetRequestTimeout(200 * time.Millisecond))
	f := natstest.Start(t)
	sys, err := nats.Connect(f.URL(), nats.UserCredentials(f.Auth.SystemCredsFile()), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("connect as the system user: %v", err)
	}
	defer sys.Close()
	f.Shutdown()
	done := make(chan error, 1)
	go func() { done <- f.Auth.Push(context.Background(), sys, nil) }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("Push(to a server that does not answer) = nil, want an error")
		}
	case <-time.After(natstest.Patience):
		t.Fatalf("Push(to a server that does not answer) still waits after %v, with no deadline of its caller's", natstest.Patience)
	}
}
