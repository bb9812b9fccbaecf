package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker"
	"github.com/lanternfarm/lantern/worker/buildkit"
	"github.com/lanternfarm/lantern/worker/dockerengine"
)

func workerCommand() command {
	return command{
		name:    "worker",
		summary: "run a builder's worker: take its jobs from NATS, rebuild in BuildKit, sign",
		long: `Worker takes the jobs of its builder (the holder of --key) from a farm's NATS,
rebuilds each in a BuildKit sandbox with the job's recipe, and publishes a
signed attestation of what it got — or of why it could not. Several workers
with the same key share the builder's jobs. It uploads its outputs (up to
--max-upload-mib each) to the farm's object store, where the scheduler
finds them to report how two builders' outputs differ.

It rebuilds with the go recipe and the generic one (a source tarball built
by its claim's build spec in a builder image pulled by digest). It fetches
source tarballs over https from public addresses only, checking each
address it connects to and each redirect; a job whose source is elsewhere
is signed as failed. --allow-private-fetch, --allow-fetch-from and
--allow-http-fetch widen that, for tests and private mirrors. Without
--buildkit it starts its own buildkitd in WORK/buildkit (make buildkitd
builds it; it runs as root with Debian's runc) and stops it on exit; what a
worker killed with SIGKILL leaves there, the next start in the same --work
cleans up. On SIGTERM it takes no more jobs, lets running builds finish
for --grace, and hands back the rest.

With --docker it builds instead in the BuildKit built into the Docker
Engine at --docker-host (Engine 20.10 or later), reached through the
Engine's API as 'docker buildx' does: the same builds, the same sandbox
with no network, the same bytes. The Engine pulls builder images with its
own registry settings (its daemon.json). An Engine before 23.0 cannot hold
the caps below: there the worker runs only with them set to 0, and a
build's scratch space has no size of its own.

Each build step is capped (--build-memory, --build-processes, --build-disk):
a build past a cap is killed and signed as failed, naming the cap. The caps
hold through a cgroup the worker makes for each build, so they need the
worker to run as root on the machine of its buildkitd (as the buildkitd it
starts does); set them to 0 to run without.

It connects with the NATS credentials the farm's operator made for the
builder ('lantern builder add NAME KEY.pub' writes NAME.creds): they let it
take its own jobs, publish its own results and upload to its own bucket, and
nothing else. It never creates a stream, consumer or bucket; if the farm is
not set up it says what is missing. Over TLS it verifies the server with
--nats-ca, or else the CA in the credentials file, or else the system's roots.

The private key's password comes from LANTERN_PASSWORD, else a prompt.

Example:
  lantern worker --nats tls://farm.example.org:4222 --creds alice.creds --key alice.key --claim-key maintainer.pub`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			natsURL := f.String("nats", envOr("LANTERN_NATS_URL", "nats://127.0.0.1:4222"), "`URL` of the farm's NATS, or URLS of its cluster's servers, comma-separated: the worker reconnects to another when one goes (default $LANTERN_NATS_URL)")
			// --help shows the default without a password the environment's URL may hold.
			f.Lookup("nats").DefValue = natsq.RedactURL(f.Lookup("nats").DefValue)
			key := f.String("key", os.Getenv("LANTERN_KEY"), "the builder's private key `FILE` (default $LANTERN_KEY)")
			creds := f.String("creds", os.Getenv("LANTERN_NATS_CREDS"), "the builder's NATS credentials `FILE`, from 'lantern builder add' (default $LANTERN_NATS_CREDS)")
			natsCA := f.String("nats-ca", os.Getenv("LANTERN_NATS_CA"), "CA certificate `FILE` to verify the farm's NATS server with (default: the CA in --creds, if any)")
			bk := f.String("buildkit", os.Getenv("LANTERN_BUILDKIT"), "`ADDR` of a buildkitd, such as unix:///run/buildkit/buildkitd.sock (default $LANTERN_BUILDKIT; empty: start one)")
			docker := f.Bool("docker", envBool("LANTERN_DOCKER"), "build in Docker Engine's built-in BuildKit, reached through the Engine's API at --docker-host, instead of a buildkitd (default $LANTERN_DOCKER)")
			dockerHost := f.String("docker-host", dockerengine.DefaultHostFromEnv(), "`ADDR` of the Docker Engine for --docker: unix:///PATH, or tcp://HOST:PORT ($DOCKER_HOST where set)")
			dockerTLS := f.String("docker-tls", os.Getenv("DOCKER_CERT_PATH"), "`DIR` of ca.pem, cert.pem and key.pem, for a tcp:// --docker-host: the worker's client certificate, and the CA the Engine's certificate is verified against (default $DOCKER_CERT_PATH; a tcp:// host beyond loopback needs it)")
			concurrency := f.Int("concurrency", 1, "`N` builds at once")
			work := f.String("work", filepath.Join(os.TempDir(), "lantern-worker"), "`DIR` for builds' files and the Go module cache")
			grace := f.Duration("grace", time.Minute, "how long running builds may finish after SIGTERM")
			heartbeat := f.Duration("heartbeat", 20*time.Second, "how often a running build tells NATS it is alive (under the farm's ack wait)")
			timeLimit := f.Duration("time-limit", 0, "how long a build may run before it is killed and reported failed (default 2h)")
			maxUpload := f.Int64("max-upload-mib", 1024, "the largest output, in `MiB`, uploaded to the farm's object store for difference reports (0: none)")
			var plainHTTP, claimKeys listFlag
			f.Var(&claimKeys, "claim-key", "a public key `FILE` of an author or bridge whose source claims this builder rebuilds (repeatable; at least one): a job is built only if it carries a claim signed by one of them and is exactly what that claim says")
			farmKeys := f.String("farm-claim-keys", "", "also accept the claim keys the farm whose API is at `URL` lists (/api/v1/claim-keys): trusting the farm, and the network to it, to choose which authors this builder rebuilds; read once, at start")
			metricsAddr := f.String("metrics", "", "`ADDR` to serve Prometheus /metrics on, such as 127.0.0.1:9464 (default: none)")
			f.Var(&plainHTTP, "registry-http", "`HOST:PORT` of a registry that the buildkitd this worker starts pulls builder images from over plain HTTP (repeatable; images are pulled by digest)")
			buildCaps := capsFlags(f)
			fetchPolicy := fetchFlags(f)
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) > 0 {
					return usagef("worker takes no arguments, got %q", args)
				}
				if err := checkBackendFlags(f, *docker, *bk, len(plainHTTP) > 0); err != nil {
					return err
				}
				caps, err := buildCaps()
				if err != nil {
					return err
				}
				if *concurrency < 1 {
					return usagef("--concurrency %d: want at least 1", *concurrency)
				}
				if *maxUpload < 0 {
					return usagef("--max-upload-mib %d: want 0 (upload nothing) or more", *maxUpload)
				}
				fetch, err := fetchPolicy()
				if err != nil {
					return err
				}
				if *creds == "" {
					return usagef("--creds is required: the farm's NATS admits no one without credentials; ask the farm's operator for the ones 'lantern builder add NAME KEY.pub' writes")
				}
				if len(claimKeys) == 0 && *farmKeys == "" {
					return usagef("--claim-key is required: a builder rebuilds only what authors it accepts have claimed; give the public key of each, or opt in to the farm's list with --farm-claim-keys URL")
				}
				accepted, err := loadKeys(claimKeys, "")
				if err != nil {
					return fmt.Errorf("--claim-key: %w", err)
				}
				if *farmKeys != "" {
					fk, err := fetchClaimKeys(ctx, *farmKeys)
					if err != nil {
						return fmt.Errorf("--farm-claim-keys: %w", err)
					}
					accepted = append(accepted, fk...)
				}
				k, err := loadPrivate(io, *key)
				if err != nil {
					return err
				}
				log := slog.New(slog.NewTextHandler(io.err, nil))
				if err := os.MkdirAll(*work, 0o755); err != nil {
					return fmt.Errorf("--work: %w", err)
				}
				if *timeLimit < 0 {
					return usagef("--time-limit %s: want a positive duration such as 30m", *timeLimit)
				}
				if err := worker.CheckCaps(caps); err != nil {
					return err
				}
				// The bus first: a worker that may not join the farm starts
				// no buildkitd.
				q, err := connectBuilder(ctx, log, *natsURL, natsq.Config{Creds: *creds, CA: *natsCA, Role: natsq.RoleBuilder, Builder: k.ID()})
				if err != nil {
					return err // it names the URL, redacted
				}
				defer q.Close()
				c, unsized, closeBackend, err := buildBackend(ctx, log, *docker, *dockerHost, *dockerTLS, *bk, caps, filepath.Join(*work, "buildkit"), plainHTTP)
				if err != nil {
					return err
				}
				defer closeBackend()
				gb, err := worker.NewGoBuilder(c, filepath.Join(*work, "modcache"), log)
				if err != nil {
					return err
				}
				gb.Limits.Time = *timeLimit
				gb.Caps = caps
				gb.UnsizedScratch = unsized
				generic, err := worker.NewGenericBuilder(c, recipes.Limits{Time: *timeLimit}, log, worker.FetchPolicy(fetch))
				if err != nil {
					return err
				}
				generic.Caps = caps
				generic.UnsizedScratch = unsized
				w, err := worker.New(worker.Config{
					Key: k, ClaimKeys: accepted, Builders: map[string]worker.Builder{"go": gb, lantern.RecipeGeneric: generic}, Concurrency: *concurrency,
					Heartbeat: *heartbeat, Grace: *grace, WorkDir: *work, MaxUpload: uploadLimit(*maxUpload),
				}, q, log)
				if err != nil {
					return err
				}
				if *metricsAddr != "" {
					stop, err := serveMetrics(*metricsAddr, w.Metrics(), log)
					if err != nil {
						return err
					}
					defer stop()
				}
				log.Info("worker taking jobs", "builder", k.ID().Short(), "nats", natsq.RedactURL(*natsURL), "concurrency", *concurrency, "claim keys", len(accepted))
				return w.Run(ctx)
			}
		},
	}
}

// checkBackendFlags refuses flags of two build backends at once: --docker
// builds in Docker Engine's BuildKit, --buildkit in a buildkitd, and
// --registry-http configures the buildkitd the worker starts.
func checkBackendFlags(f *flag.FlagSet, docker bool, buildkitAddr string, registryHTTP bool) error {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	switch {
	case docker && buildkitAddr != "":
		return usagef("--docker and --buildkit (or $LANTERN_BUILDKIT) are exclusive: a worker builds either in Docker Engine's BuildKit or in a buildkitd")
	case docker && registryHTTP:
		return usagef("--registry-http configures the buildkitd the worker starts; with --docker, the Engine pulls builder images itself: list a registry in its daemon.json's insecure-registries (127.0.0.0/8 is there by default)")
	case !docker && (set["docker-host"] || set["docker-tls"]):
		return usagef("--docker-host and --docker-tls are for the Docker Engine of --docker; add --docker to build there")
	case buildkitAddr != "" && registryHTTP:
		return usagef("--registry-http configures the buildkitd the worker starts; with --buildkit, configure that daemon's registries in its buildkitd.toml")
	}
	return nil
}

// buildBackend connects to where the worker builds: Docker Engine's
// BuildKit with --docker, else the buildkitd at --buildkit, else one it
// starts in dir (stopped by close). unsized reports a BuildKit that cannot
// size the builds' scratch space (worker.GoBuilder.UnsizedScratch).
func buildBackend(ctx context.Context, log *slog.Logger, docker bool, dockerHost, dockerTLS, addr string, caps worker.Caps, dir string, plainHTTP []string) (c *client.Client, unsized bool, close func(), err error) {
	if docker {
		e, err := dockerengine.Connect(ctx, dockerHost, dockerTLS)
		if err != nil {
			return nil, false, nil, fmt.Errorf("--docker-host: %w", err) // it names the Engine and what it lacks
		}
		if err := e.HoldsCaps(); err != nil {
			if caps != (worker.Caps{}) {
				e.Close()
				return nil, false, nil, usagef("%v: to build there without caps, set --build-memory 0 --build-processes 0 --build-disk 0", err)
			}
			unsized = true
		}
		log.Info("building in Docker Engine's BuildKit", "engine", e.String(), "caps", caps != (worker.Caps{}))
		return e.Client, unsized, func() { e.Close() }, nil
	}
	var stop func()
	if addr == "" {
		d, err := buildkit.StartDaemon(ctx, buildkit.Options{Dir: dir, PlainHTTPRegistries: plainHTTP})
		if err != nil {
			return nil, false, nil, err // it says "start buildkitd"
		}
		stop = func() { d.Close() }
		addr = d.Addr()
		log.Info("started buildkitd", "addr", addr)
	}
	c, err = buildkit.Connect(ctx, addr)
	if err != nil {
		if stop != nil {
			stop()
		}
		return nil, false, nil, fmt.Errorf("buildkit %s: %w", addr, err)
	}
	return c, false, func() {
		c.Close()
		if stop != nil {
			stop()
		}
	}, nil
}

// enrollWait is how long a worker whose credentials the farm's NATS refuses
// tries again: a running scheduler tells its server of a builder within a
// second or two of 'lantern builder add'.
const enrollWait = 20 * time.Second

// connectBuilder connects a builder's worker, trying again for enrollWait
// while the server refuses its credentials.
func connectBuilder(ctx context.Context, log *slog.Logger, url string, cfg natsq.Config) (*natsq.Queue, error) {
	deadline := time.Now().Add(enrollWait)
	for said := false; ; said = true {
		q, err := natsq.Connect(ctx, url, cfg, log)
		if err == nil || !errors.Is(err, nats.ErrAuthorization) || time.Now().After(deadline) {
			if err != nil && errors.Is(err, nats.ErrAuthorization) {
				err = fmt.Errorf("%w: the farm's NATS refuses these credentials; were they revoked (lantern builder remove), or made for another farm?", err)
			}
			return q, err
		}
		if !said {
			log.Warn("the farm's NATS refuses these credentials; trying again for a while, in case the builder was enrolled just now", "for", enrollWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// fetchClaimKeys reads the claim keys the farm whose API is at base lists.
func fetchClaimKeys(ctx context.Context, base string) ([]*keys.Public, error) {
	u, err := apiURL(base, "/api/v1/claim-keys")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, body, err := apiGet(ctx, u, 1<<20)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, truncateBytes(body))
	}
	var v struct {
		Keys []struct {
			ID        lantern.Digest `json:"id"`
			PublicKey string         `json:"publicKey"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("the farm answered %q: %w", truncateBytes(body), err)
	}
	if len(v.Keys) == 0 {
		return nil, fmt.Errorf("the farm at %s lists no claim keys", base)
	}
	var out []*keys.Public
	for _, k := range v.Keys {
		pub, err := keys.ParsePublic([]byte(k.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.ID, err)
		}
		if pub.ID() != k.ID {
			return nil, fmt.Errorf("key listed as %s is %s", k.ID, pub.ID())
		}
		out = append(out, pub)
	}
	return out, nil
}

// serveMetrics serves g's metrics at http://addr/metrics until stop.
func serveMetrics(addr string, g prometheus.Gatherer, log *slog.Logger) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "error", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+l.Addr().String()+"/metrics")
	return func() { hs.Close() }, nil
}

// uploadLimit turns --max-upload-mib into worker.Config.MaxUpload, where 0
// means the default and a negative number none.
func uploadLimit(mib int64) int64 {
	if mib == 0 {
		return -1
	}
	return mib << 20
}

// capsFlags defines the flags of the caps on each build step, defaulting
// to worker.DefaultCaps, and returns what reads them.
func capsFlags(f *flag.FlagSet) func() (worker.Caps, error) {
	d := worker.DefaultCaps
	mem := f.Int64("build-memory", d.Memory>>20, "cap on a build step's memory, its tmpfs scratch space included, in `MiB`: past it the build is killed and signed as failed (0: no cap)")
	procs := f.Int64("build-processes", d.Processes, "cap on a build step's processes and threads at once, `N`: a fork bomb is killed and signed as failed (0: no cap)")
	disk := f.Int64("build-disk", d.Disk>>20, "cap on the bytes a build step writes into its output directory, in `MiB`, held while they are written (0: no cap)")
	return func() (worker.Caps, error) {
		const most = 1 << 30 // MiB: a pebibyte, far past any machine
		for _, v := range []struct {
			name string
			n    int64
		}{{"build-memory", *mem}, {"build-processes", *procs}, {"build-disk", *disk}} {
			if v.n < 0 || v.n > most {
				return worker.Caps{}, usagef("--%s %d: want 0 (no cap) or a positive number up to %d", v.name, v.n, most)
			}
		}
		return worker.Caps{Memory: *mem << 20, Processes: *procs, Disk: *disk << 20}, nil
	}
}
