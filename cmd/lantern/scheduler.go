package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/dashboard"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
	"github.com/lanternfarm/lantern/scheduler/boltstore"
	"github.com/lanternfarm/lantern/scheduler/diffoscope"
)

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "lantern")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "lantern")
	}
	return "lantern-data"
}

func schedulerCommand() command {
	return command{
		name:    "scheduler",
		summary: "run the scheduler: claims in, jobs out over NATS JetStream, verdicts, JSON API",
		long: `Scheduler takes signed source claims (POSTed to its API or published on NATS),
queues one rebuild job per source and recipe on NATS JetStream for every
builder, verifies the attestations the builders send back, keeps claims,
attestations and verdicts in a bbolt file in the data directory, and serves
the dashboard at / and the JSON API under /api/v1, with /healthz and
/metrics. When builders disagree, it runs diffoscope on their outputs
(which the workers upload to the NATS object store) and keeps the report
for the dashboard; without diffoscope it warns and makes none.

Without --nats it runs an embedded NATS server with JetStream, storing its
streams in DATA/nats and listening on --nats-listen for workers.

Builders are the public keys given with --builder and the .pub files in
DATA/builders; claims are accepted from the keys given with --claim-key and
the .pub files in DATA/claimers.

Example:
  lantern scheduler --data /var/lib/lantern --builder alice.pub --builder bob.pub \
    --claim-key maintainer.pub --threshold 2`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			natsURL := f.String("nats", os.Getenv("LANTERN_NATS_URL"), "`URL` of an external NATS server (default $LANTERN_NATS_URL; empty: run one embedded)")
			natsListen := f.String("nats-listen", envOr("LANTERN_NATS_LISTEN", "127.0.0.1:4222"), "`ADDR` the embedded NATS server listens on (port 0: a free one)")
			data := f.String("data", envOr("LANTERN_DATA", defaultDataDir()), "data `DIR` (default $LANTERN_DATA or ~/.local/share/lantern)")
			listen := f.String("listen", envOr("LANTERN_LISTEN", "127.0.0.1:8080"), "`ADDR` of the HTTP API")
			threshold := f.Int("threshold", 2, "`N` distinct builders that must agree for reproduced")
			var builders, claimKeys listFlag
			f.Var(&builders, "builder", "a builder's public key `FILE` (repeat for more)")
			f.Var(&claimKeys, "claim-key", "a public key `FILE` whose source claims are accepted (repeat for more)")
			backlog := f.Bool("backlog", true, "a builder new to the farm rebuilds the jobs already queued (false: only new ones)")
			reindex := f.Bool("reindex", false, "rebuild the store from the streams before serving")
			ackWait := f.Duration("ack-wait", 2*time.Minute, "how long a worker may hold a job without a heartbeat before it is redelivered")
			maxDeliver := f.Int("max-deliver", 5, "deliveries of a job to one builder before it is dead-lettered")
			noBackoff := f.Bool("no-backoff", false, "redeliver after --ack-wait every time, instead of doubling the wait from one delivery to the next")
			diffo := diffoscopeFlag(f)
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) > 0 {
					return usagef("scheduler takes no arguments, got %q", args)
				}
				if *threshold < 1 {
					return usagef("--threshold %d: want at least 1", *threshold)
				}
				if *maxDeliver < 1 {
					return usagef("--max-deliver %d: want at least 1", *maxDeliver)
				}
				// Bounded redelivery with back-off: the wait doubles from one
				// delivery to the next (heartbeats reset it while a build runs).
				var backoff []time.Duration
				if !*noBackoff {
					d := *ackWait
					for range *maxDeliver {
						backoff = append(backoff, d)
						d = min(2*d, 6*time.Hour)
					}
				}
				cfg := schedulerSetup{
					natsURL: *natsURL, natsListen: *natsListen, data: *data, listen: *listen,
					threshold: *threshold, builders: builders, claimKeys: claimKeys, backlog: *backlog,
					reindex: *reindex, queue: natsq.Config{AckWait: *ackWait, MaxDeliver: *maxDeliver, BackOff: backoff, Batch: 512},
					diffoscope: *diffo,
				}
				return runScheduler(ctx, io, cfg)
			}
		},
	}
}

type schedulerSetup struct {
	natsURL, natsListen, data, listen string
	diffoscope                        string // the program; "none": no reports
	threshold                         int
	builders, claimKeys               []string
	backlog, reindex                  bool
	queue                             natsq.Config
}

func runScheduler(ctx context.Context, io *stdio, c schedulerSetup) error {
	log := slog.New(slog.NewTextHandler(io.err, nil))
	rs, err := startScheduler(ctx, log, c)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err = <-rs.failed:
	}
	if serr := rs.stop(); err == nil {
		err = serr
	}
	return err
}

// runningScheduler is a scheduler started by startScheduler: its NATS
// (embedded or not), store, ingest loop and HTTP server.
type runningScheduler struct {
	natsURL string // where workers connect
	apiURL  string // http://HOST:PORT
	// failed receives the error of the loop or the server if either ends
	// before stop.
	failed chan error
	// stop stops the server, lets ingest settle what it holds, and closes
	// the store and NATS, in that order.
	stop func() error
}

func startScheduler(ctx context.Context, log *slog.Logger, c schedulerSetup) (_ *runningScheduler, err error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	if err := os.MkdirAll(c.data, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	builders, err := loadKeys(c.builders, filepath.Join(c.data, "builders"))
	if err != nil {
		return nil, fmt.Errorf("builders: %w", err)
	}
	claimKeys, err := loadKeys(c.claimKeys, filepath.Join(c.data, "claimers"))
	if err != nil {
		return nil, fmt.Errorf("claim keys: %w", err)
	}
	if len(builders) == 0 {
		log.Warn("no builders: jobs will wait until one is added", "fix", "pass --builder FILE.pub or put .pub files in "+filepath.Join(c.data, "builders"))
	}
	if len(claimKeys) == 0 {
		log.Warn("no claim keys: every posted claim will be refused", "fix", "pass --claim-key FILE.pub or put .pub files in "+filepath.Join(c.data, "claimers"))
	}

	url := c.natsURL
	if url == "" {
		host, port, err := splitHostPort(c.natsListen)
		if err != nil {
			return nil, usagef("--nats-listen: %v", err)
		}
		if port == 0 {
			port = -1 // natsq: a free port
		}
		srv, err := natsq.StartServer(ctx, natsq.Options{Dir: filepath.Join(c.data, "nats"), Host: host, Port: port})
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		closers = append(closers, srv.Shutdown)
		url = srv.URL()
		log.Info("embedded NATS with JetStream", "url", url, "dir", filepath.Join(c.data, "nats"))
	}
	q, err := natsq.Connect(ctx, url, c.queue, log)
	if err != nil {
		return nil, fmt.Errorf("NATS %s: %w", url, err)
	}
	closers = append(closers, func() { q.Close() })
	st, err := boltstore.Open(filepath.Join(c.data, "scheduler.db"))
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { st.Close() })

	cfg := scheduler.Config{Threshold: c.threshold, ClaimKeys: claimKeys, Builders: builders, Backlog: c.backlog}
	if c.diffoscope != "none" {
		d, err := diffoscope.Find(c.diffoscope)
		if err != nil {
			log.Warn("no difference reports: builders that disagree are shown without one", "error", err, "fix", "install it, or pass --diffoscope PATH to one, or --diffoscope none")
		} else {
			cfg.Differ = d
			log.Info("difference reports by diffoscope", "program", d.Path)
		}
	}
	s, err := scheduler.New(cfg, q, st, log)
	if err != nil {
		return nil, err
	}
	if c.reindex {
		log.Info("reindexing the store from the streams")
		if err := s.Reindex(ctx); err != nil {
			return nil, err
		}
		log.Info("reindexed")
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", c.listen, err)
	}
	dash, err := dashboard.New(dashboard.Config{Store: st, Objects: q, Threshold: c.threshold, Log: log.With("component", "dashboard")})
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: dashboard.Mount(s.Handler(), dash), ReadHeaderTimeout: 10 * time.Second}
	rs := &runningScheduler{natsURL: url, apiURL: "http://" + ln.Addr().String(), failed: make(chan error, 2)}
	log.Info("scheduler API and dashboard", "api", rs.apiURL+"/api/v1/", "dashboard", rs.apiURL+"/", "builders", len(builders), "threshold", c.threshold)
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	runDone := make(chan error, 1)
	go func() {
		err := s.Run(runCtx)
		runDone <- err
		if runCtx.Err() == nil {
			rs.failed <- fmt.Errorf("scheduler: %w", err)
		}
	}()
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			rs.failed <- fmt.Errorf("HTTP server: %w", err)
		}
	}()
	rs.stop = func() error {
		// Stop taking requests, then let ingest settle what it holds,
		// before the store and NATS close.
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hs.Shutdown(shutdownCtx)
		stopRun()
		err := <-runDone
		closeAll()
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
	return rs, nil
}

// diffoscopeFlag is --diffoscope, of the commands that run a scheduler.
func diffoscopeFlag(f *flag.FlagSet) *string {
	return f.String("diffoscope", envOr("LANTERN_DIFFOSCOPE", ""), "the diffoscope `PROGRAM` that reports how disagreeing outputs differ (default $LANTERN_DIFFOSCOPE, else diffoscope on the PATH; none: no reports)")
}

// loadKeys reads the public key files named and the .pub files of dir (which
// may be missing).
func loadKeys(files []string, dir string) ([]*keys.Public, error) {
	found, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, err
	}
	var out []*keys.Public
	seen := map[string]bool{}
	for _, f := range append(append([]string{}, files...), found...) {
		k, err := loadPublic(f)
		if err != nil {
			return nil, err
		}
		if !seen[k.ID().String()] {
			seen[k.ID().String()] = true
			out = append(out, k)
		}
	}
	return out, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil {
		return "", 0, fmt.Errorf("port %q: want a number", p)
	}
	return host, port, nil
}
