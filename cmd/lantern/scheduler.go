package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/dashboard"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsauth"
	"github.com/lanternfarm/lantern/natsq/natsserver"
	"github.com/lanternfarm/lantern/recipes"
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
for the dashboard; without diffoscope it warns and makes none. diffoscope
runs in a bubblewrap sandbox as nobody, with no network, no host files but
/usr, and caps on its time, memory, processes and scratch space (the
--diffoscope-* flags); a report that hits a cap fails, naming it.

Without --nats it runs an embedded NATS server with JetStream, storing its
streams in DATA/nats and listening on --nats-listen for workers. The bus is
never open: only users with the farm's credentials connect (the farm's NATS
identities are in DATA/nats-auth), and each may do only what its role
allows. Beyond loopback the embedded server serves TLS, with
--nats-tls-cert and --nats-tls-key, or else with a CA and a certificate it
makes in DATA/nats/tls on first start (the CA goes into the builders'
credentials). With --nats, the farm runs on an operator's own nats-server,
configured with what --print-nats-config prints.

Builders are enrolled with 'lantern builder add NAME KEY.pub' (DATA/builders)
and revoked with 'lantern builder remove NAME'; the running scheduler picks
both up within a second or two. Claims are accepted from the keys given with
--claim-key and the .pub files in DATA/claimers, if their source's URL is
https on a public host (or a name): a claim that would have workers fetch
from loopback, a private or link-local address, a file or plain http is
refused, unless --allow-private-fetch, --allow-fetch-from or
--allow-http-fetch allow it; workers check the addresses names resolve to.

Example:
  lantern builder add alice alice.pub --data /var/lib/lantern
  lantern scheduler --data /var/lib/lantern --claim-key maintainer.pub \
    --nats-listen 0.0.0.0:4222 --threshold 2`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			natsURL := f.String("nats", os.Getenv("LANTERN_NATS_URL"), "`URL` of an external NATS server, or URLS of the servers of a cluster, comma-separated (default $LANTERN_NATS_URL; empty: run one embedded)")
			// --help shows the default without a password the environment's URL may hold.
			f.Lookup("nats").DefValue = natsq.RedactURL(f.Lookup("nats").DefValue)
			natsListen := f.String("nats-listen", envOr("LANTERN_NATS_LISTEN", "127.0.0.1:4222"), "`ADDR` the embedded NATS server listens on (port 0: a free one)")
			data := f.String("data", envOr("LANTERN_DATA", defaultDataDir()), "data `DIR` (default $LANTERN_DATA or ~/.local/share/lantern)")
			listen := f.String("listen", envOr("LANTERN_LISTEN", "127.0.0.1:8080"), "`ADDR` of the HTTP API")
			threshold := f.Int("threshold", 2, "`N` distinct builders that must agree for reproduced")
			var builders, claimKeys listFlag
			f.Var(&builders, "builder", "a builder's public key `FILE` to accept without enrollment (repeatable; its workers still need credentials: lantern builder add)")
			f.Var(&claimKeys, "claim-key", "a public key `FILE` whose source claims are accepted (repeat for more)")
			backlog := f.Bool("backlog", true, "a builder new to the farm rebuilds the jobs already queued (false: only new ones)")
			reindex := f.Bool("reindex", false, "rebuild the store from the streams before serving")
			ackWait := f.Duration("ack-wait", 2*time.Minute, "how long a worker may hold a job without a heartbeat before it is redelivered")
			maxDeliver := f.Int("max-deliver", 5, "deliveries of a job to one builder before it is dead-lettered")
			noBackoff := f.Bool("no-backoff", false, "redeliver after --ack-wait every time, instead of doubling the wait from one delivery to the next")
			diffo := diffoscopeFlag(f)
			var tlsNames listFlag
			tlsCert := f.String("nats-tls-cert", os.Getenv("LANTERN_NATS_TLS_CERT"), "the embedded NATS server's TLS certificate `FILE` (default: one it makes in DATA/nats/tls when it listens beyond loopback)")
			tlsKey := f.String("nats-tls-key", os.Getenv("LANTERN_NATS_TLS_KEY"), "the key `FILE` of --nats-tls-cert")
			f.Var(&tlsNames, "nats-tls-name", "a host `NAME` or address workers reach the embedded NATS by, for the certificate it makes (repeatable; its listen address, this machine's addresses and host name are in anyway)")
			natsCA := f.String("nats-ca", os.Getenv("LANTERN_NATS_CA"), "CA certificate `FILE` that the external --nats server's TLS certificate is signed by")
			limits := limitFlags(f)
			fetchPolicy := fetchFlags(f)
			cluster := clusterFlags(f)
			name := f.String("scheduler-name", os.Getenv("LANTERN_SCHEDULER_NAME"), "`NAME` of this scheduler among the farm's, which names its own NATS consumers: 1 to 32 letters, digits, - and _ (default $LANTERN_SCHEDULER_NAME, else the one kept in DATA/scheduler-name, made the first time; each scheduler of a farm needs its own: one started with the name of a running scheduler exits 1)")
			printConfig := f.Bool("print-nats-config", false, "print the configuration of an external nats-server for this farm (its operator, accounts and permissions, made in DATA/nats-auth) and exit")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) > 0 {
					return usagef("scheduler takes no arguments, got %q", args)
				}
				if (*tlsCert == "") != (*tlsKey == "") {
					return usagef("--nats-tls-cert and --nats-tls-key go together")
				}
				if err := cluster.check(*natsURL != "" && !*printConfig); err != nil {
					return err
				}
				if *printConfig {
					return printNATSConfig(io, *data, *natsListen, *tlsCert, *tlsKey, cluster)
				}
				if *threshold < 1 {
					return usagef("--threshold %d: want at least 1", *threshold)
				}
				if err := natsq.CheckSchedulerName(*name); *name != "" && err != nil {
					return usagef("--scheduler-name %v", err)
				}
				fetch, err := fetchPolicy()
				if err != nil {
					return err
				}
				if *maxDeliver < 1 {
					return usagef("--max-deliver %d: want at least 1", *maxDeliver)
				}
				if err := diffo.validate(); err != nil {
					return err
				}
				if err := limits.check(); err != nil {
					return err
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
					reindex: *reindex, queue: limits.queue(natsq.Config{AckWait: *ackWait, MaxDeliver: *maxDeliver, BackOff: backoff, Batch: 512, Replicas: cluster.replicas}),
					cluster:    cluster,
					limits:     limits,
					diffoscope: *diffo, tlsCert: *tlsCert, tlsKey: *tlsKey, tlsNames: tlsNames, natsCA: *natsCA,
					fetch: fetch, name: *name,
				}
				return runScheduler(ctx, io, cfg)
			}
		},
	}
}

type schedulerSetup struct {
	natsURL, natsListen, data, listen string
	// tlsCert, tlsKey and tlsNames configure the embedded server's TLS;
	// natsCA verifies an external server's.
	tlsCert, tlsKey, natsCA string
	tlsNames                []string
	diffoscope              diffoscopeSetup
	threshold               int
	builders, claimKeys     []string
	backlog, reindex        bool
	queue                   natsq.Config // with limits.queue applied
	limits                  *limitSettings
	fetch                   netguard.Policy // where claims' sources may be fetched from
	cluster                 *clusterSetup   // the embedded server as a node of a cluster, if set
	// name is the scheduler's name among the farm's (--scheduler-name);
	// empty: the one kept in the data directory.
	name string
}

// schedulerNameFile keeps, in the data directory, the name a scheduler made
// for itself.
const schedulerNameFile = "scheduler-name"

// schedulerName returns name, or else the name kept in data, which it makes
// and keeps the first time: "s-" and 12 random hex digits.
func schedulerName(data, name string) (string, error) {
	if name != "" {
		return name, nil
	}
	path := filepath.Join(data, schedulerNameFile)
	b, err := os.ReadFile(path)
	if err == nil {
		name = strings.TrimSpace(string(b))
		if err := natsq.CheckSchedulerName(name); err != nil {
			return "", fmt.Errorf("scheduler name in %s: %w; fix the file or remove it (a new name reads the streams again from the first message)", path, err)
		}
		return name, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("scheduler name: %w", err)
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("scheduler name: %w", err)
	}
	name = "s-" + hex.EncodeToString(r[:])
	if err := os.WriteFile(path, []byte(name+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("scheduler name: %w", err)
	}
	return name, nil
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
	natsCA  string // the CA of the embedded server's own certificate, or ""
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
	builders, err := loadKeys(c.builders, "")
	if err != nil {
		return nil, fmt.Errorf("builders: %w", err)
	}
	reg := builderRegistry(c.data)
	entries, problems, err := reg.readAll()
	if err != nil {
		return nil, fmt.Errorf("builders: %w", err)
	}
	for _, p := range problems {
		log.Error("a builder's files cannot be read: it is no builder of the farm until they are fixed", "problem", p)
	}
	enrolledNow, revoked := enrolled(entries)
	auth, err := natsauth.Open(filepath.Join(c.data, "nats-auth"))
	if err != nil {
		return nil, err
	}
	claimKeys, err := loadKeys(c.claimKeys, filepath.Join(c.data, "claimers"))
	if err != nil {
		return nil, fmt.Errorf("claim keys: %w", err)
	}
	if len(builders) == 0 && len(enrolledNow) == 0 {
		log.Warn("no builders: jobs will wait until one is enrolled", "fix", "lantern builder add NAME KEY.pub --data "+c.data)
	}
	if len(claimKeys) == 0 {
		log.Warn("no claim keys: every posted claim will be refused", "fix", "pass --claim-key FILE.pub or put .pub files in "+filepath.Join(c.data, "claimers"))
	}

	url, ca := c.natsURL, c.natsCA
	if url == "" {
		host, port, err := splitHostPort(c.natsListen)
		if err != nil {
			return nil, usagef("--nats-listen: %v", err)
		}
		if port == 0 {
			port = -1 // natsserver: a free port
		}
		sopts := natsserver.Options{
			Dir: filepath.Join(c.data, "nats"), Host: host, Port: port, Auth: auth, Revoked: revoked,
			TLSCert: c.tlsCert, TLSKey: c.tlsKey, TLSNames: c.tlsNames,
		}
		if c.cluster != nil {
			c.cluster.apply(&sopts)
		}
		srv, err := natsserver.Start(ctx, sopts)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		closers = append(closers, srv.Shutdown)
		url, ca = srv.URL(), srv.CAFile()
		log.Info("embedded NATS with JetStream", "url", url, "dir", filepath.Join(c.data, "nats"), "tls", strings.HasPrefix(url, "tls://"))
	}
	qcfg := c.queue
	qcfg.Creds, qcfg.CA, qcfg.Role = auth.SchedulerCredsFile(), ca, natsq.RoleScheduler
	if qcfg.SchedulerName, err = schedulerName(c.data, c.name); err != nil {
		return nil, err
	}
	log.Info("scheduler", "name", qcfg.SchedulerName)
	q, err := natsq.Connect(ctx, url, qcfg, log)
	if err != nil {
		return nil, err // it names the URL, redacted
	}
	closers = append(closers, func() { q.Close() })
	if err := q.Setup(ctx); err != nil {
		return nil, fmt.Errorf("NATS %s: set the farm up: %w", natsq.RedactURL(url), err)
	}
	lease, err := holdName(ctx, log, q, qcfg.SchedulerName, c)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := lease.Release(rctx); err != nil {
			log.Warn("the scheduler name stays held until its TTL", "error", err)
		}
	})
	// The system user pushes revocations to the server.
	sysAuth, err := natsq.AuthOptions(url, natsq.Config{Creds: auth.SystemCredsFile(), CA: ca})
	if err != nil {
		return nil, fmt.Errorf("NATS %s: the system user (to push revocations): %w", natsq.RedactURL(url), err)
	}
	sysOpts := append([]nats.Option{nats.Name("lantern-scheduler-system"), nats.MaxReconnects(-1)}, sysAuth...)
	sys, err := nats.Connect(url, sysOpts...)
	if err != nil {
		return nil, fmt.Errorf("NATS %s: the system user (to push revocations): %w", natsq.RedactURL(url), err)
	}
	closers = append(closers, sys.Close)
	if err := auth.Push(ctx, sys, revoked); err != nil {
		return nil, fmt.Errorf("NATS %s: %w", natsq.RedactURL(url), err)
	}
	cfg := scheduler.Config{RecipeVersions: recipes.Versions(), Threshold: c.threshold, ClaimKeys: claimKeys, Builders: builders, Backlog: c.backlog, Fetch: c.fetch}
	c.limits.scheduler(&cfg)
	if c.diffoscope.program != "none" {
		d, err := c.diffoscope.differ(ctx)
		if err != nil {
			log.Warn("no difference reports: builders that disagree are shown without one", "error", err, "fix", "install diffoscope-minimal and bubblewrap, or pass --diffoscope PATH to one, or --diffoscope none")
		} else {
			cfg.Differ = d
			log.Info("difference reports by diffoscope, in a sandbox", "program", d.Path, "timeout", d.Timeout, "memory_mib", d.MaxMemory>>20, "disk_mib", d.MaxDisk>>20, "processes", d.MaxProcs)
		}
	}
	storePath := filepath.Join(c.data, "scheduler.db")
	var st *boltstore.Store
	if !c.reindex {
		st, err = boltstore.Open(storePath)
		switch {
		case errors.Is(err, boltstore.ErrLayout):
			log.Warn("the store was written by another version of lantern: rebuilding it from the streams", "file", storePath)
			st = nil
		case err != nil:
			return nil, fmt.Errorf("%w (a damaged store is rebuilt from the streams by lantern scheduler --reindex)", err)
		}
	}
	if st == nil {
		if err := reindexStore(ctx, log, storePath, cfg, q, enrolledNow); err != nil {
			return nil, err
		}
		if st, err = boltstore.Open(storePath); err != nil {
			return nil, err
		}
	}
	closers = append(closers, func() { st.Close() })
	s, err := scheduler.New(cfg, q, st, log)
	if err != nil {
		return nil, err
	}
	if err := s.SetBuilders(ctx, enrolledNow); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", c.listen, err)
	}
	dash, err := dashboard.New(dashboard.Config{Store: st, Objects: q, Threshold: c.threshold, Building: s.Building, Log: log.With("component", "dashboard")})
	if err != nil {
		return nil, err
	}
	hs := c.limits.http.Server(dashboard.Mount(s.Handler(), dash))
	rs := &runningScheduler{natsURL: url, natsCA: ca, apiURL: "http://" + ln.Addr().String(), failed: make(chan error, 3)}
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
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watchBuilders(runCtx, log, reg, s, auth, sys, entries)
	}()
	rs.stop = func() error {
		// Stop taking requests, then let ingest settle what it holds,
		// before the store and NATS close.
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hs.Shutdown(shutdownCtx)
		stopRun()
		err := <-runDone
		<-watchDone
		closeAll()
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
	return rs, nil
}

// holdName takes the scheduler's name among the farm's for as long as it
// runs (natsq.Queue.HoldName): a second scheduler of one name would split
// its consumers' messages with the first, silently, so it refuses to start.
func holdName(ctx context.Context, log *slog.Logger, q *natsq.Queue, name string, c schedulerSetup) (*natsq.NameLease, error) {
	host, _ := os.Hostname()
	lease, err := q.HoldName(ctx, natsq.Holder{Host: host, PID: os.Getpid(), API: c.listen})
	var held *natsq.NameHeldError
	if errors.As(err, &held) {
		fix := "give this one another name (--scheduler-name NAME)"
		if c.name == "" {
			fix = fmt.Sprintf("give this one another name (--scheduler-name NAME, or remove %s to make a new one: a copy of another scheduler's data directory has its name)", filepath.Join(c.data, schedulerNameFile))
		}
		return nil, fmt.Errorf("%w; two schedulers of one name would split its messages between them, and each store would miss what the other took: %s, or stop the other first", err, fix)
	}
	if err != nil {
		return nil, err
	}
	log.Info("holding the scheduler name: another scheduler of this name refuses to start while this one runs", "name", name)
	return lease, nil
}

// watchBuilders applies what `lantern builder add|remove` write to the
// registry, every registryPoll, until ctx ends: the server learns of new
// builders' accounts and of revoked users (it closes their connections);
// new builders get their consumers, revoked ones lose theirs. A registry it
// cannot read, or a push NATS does not take, is tried again at the next
// tick; the builders are updated in the scheduler either way.
func watchBuilders(ctx context.Context, log *slog.Logger, reg registry, s *scheduler.Scheduler, auth *natsauth.Farm, sys *nats.Conn, last []builderEntry) {
	pushed := fingerprint(last)
	lastProblems := ""
	t := time.NewTicker(registryPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		entries, problems, err := reg.readAll()
		if err != nil {
			log.Warn("reading the builders failed; trying again", "dir", reg.dir, "error", err)
			continue
		}
		if p := strings.Join(problems, "; "); p != lastProblems {
			for _, p := range problems {
				log.Error("a builder's files cannot be read: it is no builder of the farm until they are fixed", "problem", p)
			}
			lastProblems = p
		}
		es, revoked := enrolled(entries)
		if fp := fingerprint(entries); fp != pushed {
			if err := auth.Push(ctx, sys, revoked); err != nil {
				log.Warn("pushing the builders' accounts and revocations to NATS failed; trying again", "error", err)
			} else {
				log.Info("builders' accounts and revocations pushed to NATS", "revoked users", len(revoked))
				pushed = fp
			}
		}
		if err := s.SetBuilders(ctx, es); err != nil && ctx.Err() == nil {
			log.Warn("updating the builders failed; trying again", "error", err)
		}
	}
}

// fingerprint is what of the registry the server must know.
func fingerprint(entries []builderEntry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s %s %v\n", e.Name, e.KeyID, e.Revoked.Format(time.RFC3339Nano), e.NATSUsers)
	}
	return b.String()
}

// printNATSConfig prints the configuration of an operator's own
// nats-server for the farm whose data directory is data; tlsCert and
// tlsKey, if set, are that server's (the routes' too, with a cluster CA).
// As the embedded server, it refuses routes beyond loopback without TLS:
// they would carry the route secret, and every account's messages, in the
// clear.
func printNATSConfig(io *stdio, data, listen, tlsCert, tlsKey string, cluster *clusterSetup) error {
	if err := cluster.checkPlainRoutes(); err != nil {
		return err
	}
	if cluster.ca != "" && tlsCert == "" {
		return usagef("--nats-cluster-ca: routes over TLS need this node's certificate and key too (--nats-tls-cert, --nats-tls-key), signed by that CA for server and client authentication")
	}
	auth, err := natsauth.Open(filepath.Join(data, "nats-auth"))
	if err != nil {
		return err
	}
	entries, err := builderRegistry(data).read()
	if err != nil {
		return err
	}
	_, revoked := enrolled(entries)
	conf, err := auth.ServerConfig(natsauth.ServerConfig{
		Listen: listen, StoreDir: "jetstream", ResolverDir: "accounts", Revoked: revoked,
		Name: cluster.name, Cluster: cluster.cluster, Routes: cluster.routeList(), ClusterCA: cluster.ca,
		TLSCert: tlsCert, TLSKey: tlsKey,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(io.out, `# Run: nats-server -c THIS_FILE (relative directories are the server's working
# directory's). Serve TLS beyond loopback: add a tls { cert_file, key_file }
# block, and give workers the CA (lantern builder add --nats-ca).
# Then: lantern scheduler --nats nats://HOST:PORT --data %s
# The scheduler connects with %s and pushes revocations with %s.
`, data, auth.SchedulerCredsFile(), auth.SystemCredsFile())
	_, err = fmt.Fprint(io.out, conf)
	return err
}

// diffoscopeSetup is diffoscope's program and the caps of its sandbox.
type diffoscopeSetup struct {
	program                                 string // "none": no reports
	timeout                                 time.Duration
	memoryMiB, diskMiB, inputMiB, reportMiB int64
	procs                                   int
}

// diffoscopeFlag is --diffoscope and the caps of its sandbox, of the
// commands that run a scheduler.
func diffoscopeFlag(f *flag.FlagSet) *diffoscopeSetup {
	var d diffoscopeSetup
	f.StringVar(&d.program, "diffoscope", envOr("LANTERN_DIFFOSCOPE", ""), "the diffoscope `PROGRAM` that reports how disagreeing outputs differ, run in a bubblewrap sandbox (default $LANTERN_DIFFOSCOPE, else diffoscope on the PATH; none: no reports)")
	f.DurationVar(&d.timeout, "diffoscope-timeout", diffoscope.DefaultTimeout, "how long diffoscope may take on two outputs before everything it runs is killed")
	f.Int64Var(&d.memoryMiB, "diffoscope-memory-mib", diffoscope.DefaultMaxMemory>>20, "memory cap in `MiB` of all of one diffoscope run's processes, its scratch files included (above --diffoscope-disk-mib)")
	f.Int64Var(&d.diskMiB, "diffoscope-disk-mib", diffoscope.DefaultMaxDisk>>20, "scratch space cap in `MiB` of one diffoscope run (a tmpfs: it unpacks archives there)")
	f.IntVar(&d.procs, "diffoscope-procs", diffoscope.DefaultMaxProcs, "cap of `N` processes and threads of one diffoscope run")
	f.Int64Var(&d.inputMiB, "diffoscope-input-mib", diffoscope.DefaultMaxInput>>20, "largest output in `MiB` that diffoscope is given")
	f.Int64Var(&d.reportMiB, "diffoscope-report-mib", diffoscope.DefaultMaxReport>>20, "longest diffoscope report in `MiB` kept; a longer one is cut")
	return &d
}

// validate checks the caps: a command-line error if wrong.
func (c diffoscopeSetup) validate() error {
	switch {
	case c.timeout <= 0:
		return usagef("--diffoscope-timeout %s: want a positive duration such as 10m", c.timeout)
	case c.memoryMiB <= 0 || c.diskMiB <= 0 || c.inputMiB <= 0 || c.reportMiB <= 0 || c.procs <= 0:
		return usagef("--diffoscope-memory-mib, --diffoscope-disk-mib, --diffoscope-input-mib, --diffoscope-report-mib and --diffoscope-procs: want positive numbers")
	case c.memoryMiB <= c.diskMiB:
		return usagef("--diffoscope-memory-mib %d: want more than --diffoscope-disk-mib %d (the scratch tmpfs's pages count in the memory cap)", c.memoryMiB, c.diskMiB)
	}
	return nil
}

// differ returns the Differ of c, once it has run diffoscope in its
// sandbox.
func (c diffoscopeSetup) differ(ctx context.Context) (*diffoscope.Differ, error) {
	d, err := diffoscope.Find(c.program)
	if err != nil {
		return nil, err
	}
	d.Timeout, d.MaxMemory, d.MaxDisk, d.MaxProcs = c.timeout, c.memoryMiB<<20, c.diskMiB<<20, c.procs
	d.MaxInput, d.MaxReport = c.inputMiB<<20, c.reportMiB<<20
	if err := d.Check(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// loadKeys reads the public key files named and the .pub files of dir (which
// may be missing).
func loadKeys(files []string, dir string) ([]*keys.Public, error) {
	var found []string
	if dir != "" {
		var err error
		if found, err = filepath.Glob(filepath.Join(dir, "*.pub")); err != nil {
			return nil, err
		}
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

// reindexStore rebuilds the store at path from the streams: into a new file
// beside it, which then takes its place in one rename. Until then the old
// file stays as it was (an interrupted reindex leaves it serving); it is
// never opened, so a damaged one is no obstacle, and it is kept as
// path.before-reindex.
func reindexStore(ctx context.Context, log *slog.Logger, path string, cfg scheduler.Config, q *natsq.Queue, enrolled []scheduler.Enrolled) error {
	if err := boltstore.CheckUnlocked(path); err != nil {
		return err
	}
	tmp := path + ".reindex"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reindex: %w", err)
	}
	st, err := boltstore.Open(tmp)
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	defer os.Remove(tmp) // after an error; after the rename there is none
	cfg.Differ = nil     // reports are made by the scheduler that serves
	s, err := scheduler.New(cfg, q, st, log)
	if err == nil {
		err = s.SetBuilders(ctx, enrolled)
	}
	if err == nil {
		log.Info("reindexing the store from the streams", "into", tmp)
		err = s.Reindex(ctx)
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reindex (the store %s is as it was): %w", path, err)
	}
	backup := path + ".before-reindex"
	if err := os.Remove(backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reindex: %w", err)
	}
	if err := os.Link(path, backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reindex: keep the old store: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() // the rename is on disk
		d.Close()
	}
	log.Info("reindexed: the new store serves", "file", path, "old", backup)
	return nil
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
