package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/keys"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker"
	"github.com/lanternfarm/lantern/worker/buildkit"
)

func upCommand() command {
	return command{
		name:    "up",
		summary: "run a whole farm on this machine: NATS, the scheduler and dashboard, two builders, BuildKit",
		long: `Up runs the embedded default farm on one machine: an embedded NATS server
with JetStream, the scheduler with its JSON API and dashboard, and --builders
workers, each a builder with a key of its own, sharing one BuildKit. Without
--buildkit it starts buildkitd (make buildkitd builds it; it runs as root with
Debian's runc) and stops it on exit. Each build step is capped
(--build-memory, --build-processes, --build-disk), as with 'lantern worker'.
Where builders disagree, diffoscope (apt-get install diffoscope-minimal
bubblewrap) reports how, in a sandbox. Ctrl-C stops everything; the next start
resumes with all data.

While it runs, DATA/up/api holds the API's URL: 'lantern rebuild' posts to
that farm, signing with DATA/up/claimer.key, when given no --farm and --key.

On first start it makes the builders' keys and a claim key in DATA/up
(builder-N.key, claimer.key, with their .pub files), protected by
LANTERN_PASSWORD (empty if unset), and enrolls the builders as 'lantern
builder add' does (their NATS credentials: DATA/up/builder-N.creds). Sign
claims with DATA/up/claimer.key and post them to the API. More builders join
with 'lantern builder add' and 'lantern worker --creds'; claim keys are
accepted from DATA/claimers, as with 'lantern scheduler'. A builder removed
with 'lantern builder remove' stays removed: up runs without it. Sources are
fetched over https from public addresses only, unless --allow-private-fetch,
--allow-fetch-from or --allow-http-fetch allow more (see lantern worker).

Example:
  lantern up
  lantern claim sign --key ~/.local/share/lantern/up/claimer.key \
    --source example.org/hello@v1.0.0 --source-file hello-1.0.0.tar.gz \
    --fetch https://example.org/hello-1.0.0.tar.gz --recipe generic --build hello.build.json \
    --post http://127.0.0.1:8080`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			data := f.String("data", envOr("LANTERN_DATA", defaultDataDir()), "data `DIR` (default $LANTERN_DATA or ~/.local/share/lantern)")
			listen := f.String("listen", envOr("LANTERN_LISTEN", "127.0.0.1:8080"), "`ADDR` of the dashboard and the API")
			natsListen := f.String("nats-listen", envOr("LANTERN_NATS_LISTEN", "127.0.0.1:4222"), "`ADDR` the embedded NATS server listens on, for more workers (port 0: a free one)")
			bk := f.String("buildkit", os.Getenv("LANTERN_BUILDKIT"), "`ADDR` of a buildkitd to build in (default $LANTERN_BUILDKIT; empty: start one in DATA/buildkit)")
			nBuilders := f.Int("builders", 2, "`N` builders, each with its own key and worker")
			threshold := f.Int("threshold", 0, "`N` distinct builders that must agree for reproduced, at most --builders (default 2, or --builders if fewer)")
			timeLimit := f.Duration("time-limit", 0, "how long a build may run before it is killed and reported failed (default 2h)")
			diffo := diffoscopeFlag(f)
			limits := limitFlags(f)
			var plainHTTP listFlag
			f.Var(&plainHTTP, "registry-http", "`HOST:PORT` of a registry that the buildkitd started here pulls builder images from over plain HTTP (repeatable)")
			buildCaps := capsFlags(f)
			fetchPolicy := fetchFlags(f)
			cluster := clusterFlags(f)
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) > 0 {
					return usagef("up takes no arguments, got %q", args)
				}
				if err := cluster.check(false); err != nil {
					return err
				}
				caps, err := buildCaps()
				if err != nil {
					return err
				}
				if *nBuilders < 1 || *nBuilders > 16 {
					return usagef("--builders %d: want 1 to 16", *nBuilders)
				}
				set := false
				f.Visit(func(fl *flag.Flag) { set = set || fl.Name == "threshold" })
				th, err := upThreshold(*threshold, set, *nBuilders)
				if err != nil {
					return err
				}
				if err := limits.check(); err != nil {
					return err
				}
				if *timeLimit < 0 {
					return usagef("--time-limit %s: want a positive duration such as 30m", *timeLimit)
				}
				if err := diffo.validate(); err != nil {
					return err
				}
				if *bk != "" && len(plainHTTP) > 0 {
					return usagef("--registry-http configures the buildkitd that up starts; with --buildkit, configure that daemon's registries in its buildkitd.toml")
				}
				if err := worker.CheckCaps(caps); err != nil {
					return err
				}
				fetch, err := fetchPolicy()
				if err != nil {
					return err
				}
				return runUp(ctx, io, upSetup{
					data: *data, listen: *listen, natsListen: *natsListen, buildkit: *bk,
					builders: *nBuilders, threshold: th, timeLimit: *timeLimit, plainHTTP: plainHTTP,
					diffoscope: *diffo, limits: limits, caps: caps, fetch: fetch, cluster: cluster,
				})
			}
		},
	}
}

// upThreshold is the threshold of up's farm of builders: threshold if set
// on the command line, else 2, or builders if fewer. A threshold above the
// number of builders could never be reached: every verdict would stay
// pending.
func upThreshold(threshold int, set bool, builders int) (int, error) {
	if !set {
		return min(2, builders), nil
	}
	if threshold < 1 {
		return 0, usagef("--threshold %d: want at least 1", threshold)
	}
	if threshold > builders {
		return 0, usagef("--threshold %d with --builders %d: a verdict needs %d builders to agree and the farm would have %d, so every verdict would stay pending; give --builders %d or more, or --threshold %d or less",
			threshold, builders, threshold, builders, threshold, builders)
	}
	return threshold, nil
}

type upSetup struct {
	data, listen, natsListen, buildkit string
	diffoscope                         diffoscopeSetup
	builders, threshold                int
	timeLimit                          time.Duration
	plainHTTP                          []string
	limits                             *limitSettings
	caps                               worker.Caps
	fetch                              netguard.Policy // the scheduler's and the workers'
	cluster                            *clusterSetup   // the embedded NATS as a node of a cluster
}

func runUp(ctx context.Context, io *stdio, c upSetup) (err error) {
	log := slog.New(slog.NewTextHandler(io.err, nil))
	dir := filepath.Join(c.data, "up")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	// Held while up runs: 'lantern rebuild' takes only a running up's farm.
	release, err := holdUpLock(dir)
	if err != nil {
		return err
	}
	defer release()
	pw := []byte(os.Getenv(passwordEnv))
	type upBuilder struct {
		name, creds string
		key         *keys.Private
	}
	var builders []upBuilder
	for i := range c.builders {
		name := "builder-" + strconv.Itoa(i+1)
		prefix := filepath.Join(dir, name)
		k, made, err := ensureKey(prefix, pw)
		if err != nil {
			return err
		}
		if made {
			log.Info("made a builder key", "file", prefix+".key", "key", k.ID())
		}
		ok, err := enrollUp(c.data, name, k.Public(), prefix+".creds")
		if err != nil {
			return fmt.Errorf("enroll %s: %w", name, err)
		}
		if !ok {
			log.Warn("builder removed from the farm: up runs without it", "builder", name, "fix", "enroll it again: lantern builder add "+name+" "+prefix+".pub --out "+prefix+".creds")
			continue
		}
		builders = append(builders, upBuilder{name: name, creds: prefix + ".creds", key: k})
	}
	claimer := filepath.Join(dir, "claimer")
	ck, made, err := ensureKey(claimer, pw)
	if err != nil {
		return err
	}
	if made {
		log.Info("made a claim key", "file", claimer+".key", "key", ck.ID())
	}

	// Its workers rebuild what the farm's claimers claim: the same keys
	// the scheduler accepts.
	accepted, err := loadKeys([]string{claimer + ".pub"}, filepath.Join(c.data, "claimers"))
	if err != nil {
		return err
	}
	rs, err := startScheduler(ctx, log, schedulerSetup{
		natsListen: c.natsListen, data: c.data, listen: c.listen, threshold: c.threshold,
		claimKeys: []string{claimer + ".pub"}, backlog: true,
		queue: c.limits.queue(natsq.Config{Batch: 512, Replicas: c.cluster.replicas}), limits: c.limits, diffoscope: c.diffoscope, fetch: c.fetch,
		cluster: c.cluster,
	})
	if err != nil {
		return err
	}
	// Last: the scheduler, its store and NATS, once the workers are gone.
	defer func() {
		if serr := rs.stop(); err == nil {
			err = serr
		}
	}()

	addr := c.buildkit
	if addr == "" {
		d, err := buildkit.StartDaemon(ctx, buildkit.Options{Dir: filepath.Join(c.data, "buildkit"), PlainHTTPRegistries: c.plainHTTP})
		if err != nil {
			return err // it says "start buildkitd"
		}
		defer d.Close()
		addr = d.Addr()
		log.Info("started buildkitd", "addr", addr)
	}
	bc, err := buildkit.Connect(ctx, addr)
	if err != nil {
		return fmt.Errorf("buildkit %s: %w", addr, err)
	}
	defer bc.Close()

	// The workers stop when ctx ends (Ctrl-C), handing back what they hold,
	// or when a part of the farm fails.
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	var wg sync.WaitGroup
	workErr := make(chan error, len(builders))
	for _, b := range builders {
		name, k := b.name, b.key
		wlog := log.With("worker", name)
		q, err := natsq.Connect(ctx, rs.natsURL, natsq.Config{Name: name, Creds: b.creds, CA: rs.natsCA, Role: natsq.RoleBuilder, Builder: k.ID()}, wlog)
		if err != nil {
			return fmt.Errorf("%s: NATS %s: %w", name, rs.natsURL, err)
		}
		defer q.Close()
		work := filepath.Join(dir, "work", name)
		if err := os.MkdirAll(work, 0o755); err != nil {
			return err
		}
		gb, err := worker.NewGoBuilder(bc, filepath.Join(dir, "work", "modcache"), wlog)
		if err != nil {
			return err
		}
		gb.Limits.Time = c.timeLimit
		gb.Caps = c.caps
		generic, err := worker.NewGenericBuilder(bc, recipes.Limits{Time: c.timeLimit}, wlog, worker.FetchPolicy(c.fetch))
		if err != nil {
			return err
		}
		generic.Caps = c.caps
		w, err := worker.New(worker.Config{
			Key:       k,
			ClaimKeys: accepted,
			Builders:  map[string]worker.Builder{"go": gb, lantern.RecipeGeneric: generic},
			Grace:     5 * time.Second, WorkDir: work,
		}, q, wlog)
		if err != nil {
			return err
		}
		wg.Go(func() {
			if err := w.Run(wctx); err != nil {
				workErr <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}
	// Where the farm's API is, for 'lantern rebuild' on this machine; gone
	// when up stops.
	apiFile := filepath.Join(dir, upAPIFile)
	if err := replaceFile(apiFile, []byte(rs.apiURL+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the API's address: %w", err)
	}
	defer os.Remove(apiFile)
	if forget, other, err := nameUpElsewhere(c.data); err != nil {
		log.Warn("lantern rebuild will not find this farm without --data", "err", err)
	} else {
		if other != "" {
			log.Info("lantern rebuild without --data finds the lantern up running with another data dir first", "data", other)
		}
		defer forget()
	}
	fmt.Fprintf(io.err, `
Lantern is up.
  dashboard  %s/
  API        %s/api/v1/
  NATS       %s  (more builders: lantern builder add NAME KEY.pub --data %s,
             then lantern worker --nats %s --creds NAME.creds --key KEY --farm-claim-keys %s)
  builders   %d, keys and credentials in %s; %d must agree for reproduced (--threshold)
  claims     sign with %s.key and post to the API (lantern claim sign --post %s)
Ctrl-C stops it; the next start resumes.

`, rs.apiURL, rs.apiURL, rs.natsURL, c.data, rs.natsURL, rs.apiURL, len(builders), dir, c.threshold, claimer, rs.apiURL)

	select {
	case <-ctx.Done():
		log.Info("stopping: workers hand back what they hold")
	case err = <-rs.failed:
	case err = <-workErr:
	}
	if err != nil {
		log.Error("stopping", "err", err)
	}
	stopWorkers()
	wg.Wait()
	return err
}

// enrollUp makes sure up's builder name (key k) is enrolled, with its
// credentials in creds. It reports false for a builder that was enrolled
// and then removed: up respects the removal.
func enrollUp(data, name string, k *keys.Public, creds string) (bool, error) {
	all, err := builderRegistry(data).read()
	if err != nil {
		return false, err
	}
	active, removed := false, false
	for _, e := range all {
		if e.KeyID != k.ID() {
			continue
		}
		if e.Revoked.IsZero() {
			active = true
		} else {
			removed = true
		}
	}
	if !active && removed {
		return false, nil
	}
	if _, err := os.Stat(creds); active && err == nil {
		return true, nil
	}
	c, err := enroll(data, name, k, farmCA(data))
	if err != nil {
		return false, err
	}
	if err := replaceFile(creds, c, 0o600); err != nil {
		return false, fmt.Errorf("write credentials: %w", err)
	}
	return true, nil
}

// ensureKey loads prefix.key with password pw, or, where there is none
// yet, makes a key pair and writes prefix.key and prefix.pub.
func ensureKey(prefix string, pw []byte) (k *keys.Private, made bool, err error) {
	b, err := os.ReadFile(prefix + ".key")
	switch {
	case err == nil:
		k, err := keys.ParsePrivate(b, pw)
		if errors.Is(err, keys.ErrPassword) {
			return nil, false, fmt.Errorf("%s.key: %w: it was made with another %s", prefix, err, passwordEnv)
		}
		if err != nil {
			return nil, false, fmt.Errorf("%s.key: %w", prefix, err)
		}
		return k, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	}
	if k, err = keys.Generate(); err != nil {
		return nil, false, err
	}
	priv, err := k.MarshalEncrypted(pw)
	if err != nil {
		return nil, false, err
	}
	if err := writeFile(prefix+".key", priv, 0o600); err != nil {
		return nil, false, fmt.Errorf("write private key: %w", err)
	}
	if err := writeFile(prefix+".pub", k.Public().MarshalPEM(), 0o644); err != nil {
		return nil, false, fmt.Errorf("write public key: %w", err)
	}
	return k, true, nil
}

// nameUpElsewhere writes, when data is not the default data dir, data's
// absolute path into the default data dir's upElsewhereFile, where
// 'lantern rebuild' without --data looks for a running up, and returns
// what removes the file again if it still names data. An up running with
// another data dir that the file names already keeps its name: other is
// that dir, and forget does nothing.
func nameUpElsewhere(data string) (forget func(), other string, err error) {
	abs, err := filepath.Abs(data)
	if err != nil {
		return nil, "", err
	}
	def, err := filepath.Abs(defaultDataDir())
	if err != nil {
		return nil, "", err
	}
	if abs == def {
		return func() {}, "", nil
	}
	if err := os.MkdirAll(def, 0o700); err != nil {
		return nil, "", err
	}
	file := filepath.Join(def, upElsewhereFile)
	if o := upElsewhereName(file); o != "" && o != abs && plainPath(o) && upRunning(filepath.Join(o, "up")) {
		return func() {}, o, nil
	}
	if err := replaceFile(file, []byte(abs+"\n"), 0o600); err != nil {
		return nil, "", err
	}
	return func() {
		if upElsewhereName(file) == abs {
			os.Remove(file)
		}
	}, "", nil
}
