// Package natstest starts a farm's real NATS server for tests, embedded,
// with the farm's identities (no anonymous client gets in), and hands out
// the credentials of its scheduler and its builders.
package natstest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsauth"
	"github.com/lanternfarm/lantern/natsq/natsserver"
)

// Patience bounds starting and connecting: generous, for a loaded machine.
const Patience = 60 * time.Second

// Farm is a running embedded NATS server and its identities.
type Farm struct {
	t      testing.TB
	Dir    string
	Auth   *natsauth.Farm
	Server *natsserver.Server
	opts   natsserver.Options
}

// Start starts a server on a fresh directory and a random port on
// 127.0.0.1, and shuts it down when the test ends.
func Start(t testing.TB) *Farm {
	t.Helper()
	return StartIn(t, t.TempDir(), -1)
}

// StartIn starts a server whose files are in dir (a server started again on
// the same dir has all it had), on port (-1: a random one).
func StartIn(t testing.TB, dir string, port int) *Farm {
	t.Helper()
	auth, err := natsauth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	f := &Farm{t: t, Dir: dir, Auth: auth, opts: natsserver.Options{Dir: filepath.Join(dir, "nats"), Port: port, Auth: auth}}
	f.start()
	return f
}

func (f *Farm) start() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	s, err := natsserver.Start(ctx, f.opts)
	if err != nil {
		f.t.Fatalf("start nats server: %v", err)
	}
	f.Server = s
	f.t.Cleanup(s.Shutdown)
}

// Restart shuts the server down and starts it again on the same files and
// port.
func (f *Farm) Restart() {
	f.t.Helper()
	u := f.URL()
	f.Server.Shutdown()
	_, port, _ := splitPort(u)
	f.opts.Port = port
	f.start()
}

// Shutdown stops the server (a later Restart starts it again).
func (f *Farm) Shutdown() { f.Server.Shutdown() }

// URL is where clients connect.
func (f *Farm) URL() string { return f.Server.URL() }

// SchedulerConfig returns cfg with the scheduler's credentials.
func (f *Farm) SchedulerConfig(cfg natsq.Config) natsq.Config {
	cfg.Creds = f.Auth.SchedulerCredsFile()
	cfg.Role = natsq.RoleScheduler
	return cfg
}

// BuilderConfig returns cfg with new credentials of builder.
func (f *Farm) BuilderConfig(builder lantern.Digest, cfg natsq.Config) natsq.Config {
	f.t.Helper()
	cfg.Creds = f.Creds("builder-"+builder.Hex()[:8], natsq.RoleBuilder, builder)
	cfg.Role = natsq.RoleBuilder
	cfg.Builder = builder
	return cfg
}

// Creds writes new credentials of a user of role to a file and returns its
// path.
func (f *Farm) Creds(name string, role natsq.Role, builder lantern.Digest) string {
	f.t.Helper()
	c, _, err := f.Auth.Creds(name, role, builder)
	if err != nil {
		f.t.Fatal(err)
	}
	// A builder new to the farm has a new account: the server learns of
	// it as a running scheduler's server does, by a push.
	f.Push(nil)
	file := filepath.Join(f.t.TempDir(), name+".creds")
	if err := os.WriteFile(file, c, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return file
}

// Scheduler connects as the scheduler, sets the farm up (streams and the
// farm's bucket), and closes the connection when the test ends.
func (f *Farm) Scheduler(cfg natsq.Config) *natsq.Queue {
	f.t.Helper()
	q := f.Connect(f.SchedulerConfig(cfg))
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	if err := q.Setup(ctx); err != nil {
		f.t.Fatalf("set the farm up: %v", err)
	}
	return q
}

// Builder connects as builder, with credentials of its own.
func (f *Farm) Builder(builder lantern.Digest, cfg natsq.Config) *natsq.Queue {
	f.t.Helper()
	return f.Connect(f.BuilderConfig(builder, cfg))
}

// Connect connects with cfg and closes the connection when the test ends.
func (f *Farm) Connect(cfg natsq.Config) *natsq.Queue {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	q, err := natsq.Connect(ctx, f.URL(), cfg, nil)
	if err != nil {
		f.t.Fatalf("connect to nats: %v", err)
	}
	f.t.Cleanup(func() { q.Close() })
	return q
}

// Push sends the farm's accounts to the server, with revoked, over the
// system account, as a running scheduler does.
func (f *Farm) Push(revoked map[string]time.Time) {
	f.t.Helper()
	sys, err := nats.Connect(f.URL(), nats.UserCredentials(f.Auth.SystemCredsFile()))
	if err != nil {
		f.t.Fatalf("connect as the system user: %v", err)
	}
	defer sys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	if err := f.Auth.Push(ctx, sys, revoked); err != nil {
		f.t.Fatalf("push the accounts: %v", err)
	}
}

func splitPort(url string) (string, int, error) {
	for i := len(url) - 1; i >= 0; i-- {
		if url[i] == ':' {
			p := 0
			for _, c := range url[i+1:] {
				p = p*10 + int(c-'0')
			}
			return url[:i], p, nil
		}
	}
	return url, 0, nil
}
