package natsq

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
)

// Stream, subject, consumer and bucket names: the wire protocol described in
// the package documentation.
const (
	StreamClaims  = "LANTERN_CLAIMS"
	StreamJobs    = "LANTERN_JOBS"
	StreamResults = "LANTERN_RESULTS"
	StreamDead    = "LANTERN_DEAD"

	SubjectClaims = "lantern.claims"
	// SubjectClaimsAPI is where the scheduler puts the claims posted to its
	// API: it has checked them and counted them against their key's rate
	// already. Claimants cannot publish there.
	SubjectClaimsAPI = SubjectClaims + ".api"
	// SubjectJobs is the prefix of the job subjects, lantern.jobs.<recipe>.
	SubjectJobs = "lantern.jobs"
	// SubjectResults is the prefix of the result subjects,
	// lantern.results.<builder key id hex>.
	SubjectResults = "lantern.results"
	// SubjectDead is what LANTERN_DEAD captures: JetStream's advisories for
	// jobs a consumer of LANTERN_JOBS gave up on.
	SubjectDead = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamJobs + ".>"

	// ConsumerClaims, ConsumerResults and ConsumerDead are the consumers
	// of a scheduler with no Config.SchedulerName: the farm's only
	// scheduler, as every farm had before schedulers had names. A named
	// scheduler's are SchedulerConsumer(name, ...).
	ConsumerClaims  = "scheduler-claims"
	ConsumerResults = "scheduler-results"
	ConsumerDead    = "scheduler-dead"

	// MetadataBuilder is the consumer metadata key that holds a builder
	// consumer's full key id.
	MetadataBuilder = "lantern-builder"

	BucketObjects = "LANTERN_OBJECTS"
)

// builderConsumerPrefix starts the name of every builder's consumer.
const builderConsumerPrefix = "builder-"

// Config tunes the streams and consumers. The zero value is the default
// everywhere.
type Config struct {
	// Name names the connection in the server's monitoring; default
	// "lantern".
	Name string
	// Creds is the connection's NATS credentials file (from `lantern
	// builder add`, or the scheduler's own). A farm's NATS accepts no
	// connection without one.
	Creds string
	// CA is a file of PEM certificates to verify the server's TLS
	// certificate with; empty: the CA in the credentials file, if it has
	// one, else the system's roots.
	CA string
	// Role is what the connection is for (default RoleScheduler); it picks
	// the reply subjects the role's permissions allow.
	Role Role
	// Builder is the builder of a RoleBuilder connection.
	Builder lantern.Digest
	// SchedulerName names a scheduler's own consumers of the claims,
	// results, dead letters and difference reports, through which it
	// reads every message into its store: each scheduler of a farm needs
	// a name of its own (letters, digits, - and _, up to 32). Empty: the
	// farm's only scheduler, with the consumers of farms before names
	// (ConsumerClaims, ...); a named scheduler's Setup deletes those.
	SchedulerName string
	// NameTTL is how long a scheduler's hold on its name (see
	// [Queue.HoldName]) outlives its last renewal: a scheduler that died
	// holds its name up to this long; default DefaultNameTTL.
	NameTTL time.Duration
	// Replicas is the number of replicas of every stream and of the object
	// store; default 1. Past one machine, NATS runs as a cluster and 3 is
	// usual.
	Replicas int
	// DuplicateWindow is how long a stream remembers a Nats-Msg-Id to drop
	// a duplicate; default 2 minutes.
	DuplicateWindow time.Duration
	// AckWait is how long a consumer waits for an ack (or an in-progress
	// heartbeat) before it redelivers; default 2 minutes.
	AckWait time.Duration
	// MaxDeliver is how many times a builder's consumer delivers a job
	// before it gives up and the job becomes a dead letter; default 5.
	MaxDeliver int
	// BackOff, if set, are the ack waits of successive deliveries of a job
	// (the last one repeats); it must not be longer than MaxDeliver.
	BackOff []time.Duration
	// Batch is the most messages the scheduler's consumers hand to a
	// handler at once; default 256.
	Batch int
	// NakDelay is how long a message whose handler failed waits before it
	// is redelivered; default 1 second.
	NakDelay time.Duration

	// Limits of what the farm's streams and buckets hold, which the
	// scheduler's Setup and EnsureBuilder apply (also to a farm set up by
	// an earlier version). A full stream or bucket refuses what comes next
	// and discards nothing: the streams are the record a reindex rebuilds
	// the store from. The NATS server reserves every MaxBytes in its store
	// (by default 75% of its disk's free space) and refuses to create a
	// stream or bucket past that. Zero is the default; a negative MaxBytes
	// or MaxMsgSize is no limit.

	// StreamMaxBytes bounds each of the claims, jobs and results streams;
	// default 1 GiB.
	StreamMaxBytes int64
	// DeadMaxBytes bounds the dead-letter stream; default 64 MiB.
	DeadMaxBytes int64
	// StreamMaxAge is how long the streams keep a message; default 0:
	// for ever (a reindex needs every claim and result).
	StreamMaxAge time.Duration
	// MaxMsgSize bounds one message of a stream: a claim, job, result;
	// default 1 MiB, what a NATS server takes by default (max_payload).
	MaxMsgSize int32
	// BucketMaxBytes bounds the farm's bucket (LANTERN_OBJECTS, the
	// difference reports); default 1 GiB.
	BucketMaxBytes int64
	// BuilderBucketMaxBytes bounds each builder's bucket: what one builder
	// may have uploaded at a time, logs and outputs; default 2 GiB.
	BuilderBucketMaxBytes int64
}

// Default limits of Config.
const (
	DefaultStreamMaxBytes        = 1 << 30
	DefaultDeadMaxBytes          = 64 << 20
	DefaultMaxMsgSize            = 1 << 20
	DefaultBucketMaxBytes        = 1 << 30
	DefaultBuilderBucketMaxBytes = 2 << 30
)

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = "lantern"
	}
	if c.Role == "" {
		c.Role = RoleScheduler
	}
	if c.Role == RoleBuilder && c.Builder.IsZero() {
		return c, errors.New("natsq config: Role is builder but Builder is empty; set it to the builder's key id")
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if err := CheckSchedulerName(c.SchedulerName); c.SchedulerName != "" && err != nil {
		return c, fmt.Errorf("natsq config: SchedulerName: %w", err)
	}
	if c.NameTTL == 0 {
		c.NameTTL = DefaultNameTTL
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.AckWait == 0 {
		c.AckWait = 2 * time.Minute
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.Batch == 0 {
		c.Batch = 256
	}
	if c.NakDelay == 0 {
		c.NakDelay = time.Second
	}
	limit := func(v *int64, def int64) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = -1
		}
	}
	limit(&c.StreamMaxBytes, DefaultStreamMaxBytes)
	limit(&c.DeadMaxBytes, DefaultDeadMaxBytes)
	limit(&c.BucketMaxBytes, DefaultBucketMaxBytes)
	limit(&c.BuilderBucketMaxBytes, DefaultBuilderBucketMaxBytes)
	switch {
	case c.MaxMsgSize == 0:
		c.MaxMsgSize = DefaultMaxMsgSize
	case c.MaxMsgSize < 0:
		c.MaxMsgSize = -1
	}
	switch {
	case c.Replicas < 0 || c.Replicas > 5:
		return c, fmt.Errorf("natsq config: Replicas is %d; want 1 to 5", c.Replicas)
	case c.NameTTL < time.Second:
		return c, fmt.Errorf("natsq config: NameTTL is %v; want a second or more", c.NameTTL)
	case c.DuplicateWindow < 0:
		return c, fmt.Errorf("natsq config: DuplicateWindow is %v; want a positive duration", c.DuplicateWindow)
	case c.AckWait < 0:
		return c, fmt.Errorf("natsq config: AckWait is %v; want a positive duration", c.AckWait)
	case c.MaxDeliver < 1:
		return c, fmt.Errorf("natsq config: MaxDeliver is %d; want at least 1", c.MaxDeliver)
	case len(c.BackOff) > c.MaxDeliver:
		return c, fmt.Errorf("natsq config: BackOff has %d steps but MaxDeliver is %d; shorten BackOff or raise MaxDeliver", len(c.BackOff), c.MaxDeliver)
	case c.Batch < 1:
		return c, fmt.Errorf("natsq config: Batch is %d; want at least 1", c.Batch)
	case c.NakDelay < 0:
		return c, fmt.Errorf("natsq config: NakDelay is %v; want a positive duration", c.NakDelay)
	case c.StreamMaxAge < 0:
		return c, fmt.Errorf("natsq config: StreamMaxAge is %v; want 0 (for ever) or a positive duration", c.StreamMaxAge)
	}
	for i, d := range c.BackOff {
		if d <= 0 {
			return c, fmt.Errorf("natsq config: BackOff[%d] is %v; want a positive duration", i, d)
		}
	}
	return c, nil
}

// Queue is a connection to NATS with Lantern's streams: the scheduler's
// [scheduler.Queue], and the source of a builder's [JobConsumer]s.
type Queue struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	cfg    Config
	log    *slog.Logger
	closed chan struct{} // closed when the connection is

	objMu   sync.Mutex
	objects jetstream.ObjectStore // the bucket PutObject writes to, once bound

	buildingDenied sync.Once // logged once: see PublishBuilding

	stopOnce sync.Once
	stopping chan struct{} // closed when Close starts: pulls end

	mu sync.Mutex
	// builders maps a builder consumer's name to the builder's key id.
	builders map[string]lantern.Digest
	// lease is the scheduler's hold on its name, once HoldName took it:
	// the consumers take messages only while it is held.
	lease *NameLease
}

// Connect connects to the NATS server at url with cfg.Creds, reconnecting
// when the connection drops (until the server refuses the credentials:
// a revoked builder's connection ends). It creates nothing: the scheduler
// sets the farm up ([Queue.Setup]). log receives connection events and
// messages the queue had to drop; nil discards them. Neither log lines nor
// errors show a password or token of url.
func Connect(ctx context.Context, url string, cfg Config, log *slog.Logger) (*Queue, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{
		cfg:      cfg,
		log:      log,
		closed:   make(chan struct{}),
		stopping: make(chan struct{}),
		builders: make(map[string]lantern.Digest),
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				q.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.CustomInboxPrefix(InboxPrefix(cfg.Role, cfg.Builder)),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			q.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), SubjectBuilding+".") {
				// Credentials issued before builders said what they
				// build: progress goes unseen, nothing else changes.
				q.buildingDenied.Do(func() {
					q.log.Info("this builder's NATS credentials do not allow saying which job it builds ("+SubjectBuilding+"), so the farm shows its jobs as queued until they are done; new credentials from the farm's 'lantern builder add' do", "err", err)
				})
				return
			}
			q.log.Warn("nats async error", "subject", subj, "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(q.closed) }),
	}
	if deadline, ok := ctx.Deadline(); ok {
		if d := time.Until(deadline); d > 0 && d < nats.DefaultTimeout {
			opts = append(opts, nats.Timeout(d))
		}
	}
	safeURL := RedactURL(url)
	auth, err := AuthOptions(url, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", safeURL, err)
	}
	opts = append(opts, auth...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", safeURL, redactErr(err, url))
	}
	q.nc = nc
	if cfg.Role == RoleScheduler {
		q.js, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(30*time.Second))
	} else {
		// Members reach the farm's JetStream API through their account's
		// imports (MembersAPIPrefix).
		q.js, err = jetstream.NewWithAPIPrefix(nc, MembersAPIPrefix, jetstream.WithPublishAsyncTimeout(30*time.Second))
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect to nats %s: %w", safeURL, err)
	}
	return q, nil
}

// AuthOptions are the options that authenticate a connection to url with
// cfg's credentials and verify the server: with cfg's CA, or the CA in the
// credentials file; and where neither is given and a server of url is not
// on loopback, TLS with the system's roots all the same, so that nobody
// between a worker and a remote farm can talk it down to plain text.
func AuthOptions(url string, cfg Config) ([]nats.Option, error) {
	var opts []nats.Option
	var caPEM []byte
	if cfg.Creds != "" {
		b, err := os.ReadFile(cfg.Creds)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		opts = append(opts, nats.UserCredentials(cfg.Creds))
		caPEM = caFromCreds(b)
	}
	if cfg.CA != "" {
		b, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("CA: %w", err)
		}
		caPEM = b
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("CA: no PEM certificate in it")
		}
		opts = append(opts, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	} else if !allLoopback(url) {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	return opts, nil
}

// allLoopback reports whether every server of url (a comma-separated list)
// is on this machine's loopback.
func allLoopback(url string) bool {
	for _, p := range strings.Split(url, ",") {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "nats://" + p
		}
		u, err := neturl.Parse(p)
		if err != nil {
			return false
		}
		h := u.Hostname()
		if h == "localhost" {
			continue
		}
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// caFromCreds returns the CA certificates a farm appends to the
// credentials it hands out (natsauth.AppendCA), or nil.
func caFromCreds(creds []byte) []byte {
	i := bytes.Index(creds, []byte("-----BEGIN CERTIFICATE-----"))
	if i < 0 {
		return nil
	}
	return creds[i:]
}

// RedactURL returns url with any user name, password or token taken out,
// for logs and errors: nats://user:secret@host:4222 becomes
// nats://redacted@host:4222. Each URL of a comma-separated list is
// redacted. Everything before the last "@" of a URL goes, whatever it
// holds (a password with a raw "/" or "@" in it included): NATS URLs have no
// path that could hold one.
func RedactURL(url string) string {
	parts := strings.Split(url, ",")
	for i, p := range parts {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			continue
		}
		scheme := ""
		if j := strings.Index(p[:at], "://"); j >= 0 {
			scheme = p[:j+3]
		}
		lead := p[:len(p)-len(strings.TrimLeft(p, " "))]
		if scheme != "" {
			scheme = strings.TrimLeft(scheme, " ")
		}
		parts[i] = lead + scheme + "redacted@" + p[at+1:]
	}
	return strings.Join(parts, ",")
}

// redactErr returns err with any user information of url taken out of its
// text.
func redactErr(err error, url string) error {
	msg := err.Error()
	clean := msg
	for _, p := range strings.Split(url, ",") {
		if u, perr := neturl.Parse(strings.TrimSpace(p)); perr == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				clean = strings.ReplaceAll(clean, pw, "redacted")
			}
			if n := u.User.Username(); n != "" {
				clean = strings.ReplaceAll(clean, n, "redacted")
			}
		}
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

// redactedError keeps errors.Is working on an error whose text was
// redacted.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// sameStream reports whether an existing stream has the settings Lantern
// sets.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Storage == want.Storage &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
		have.Retention == want.Retention && have.Description == want.Description &&
		have.MaxBytes == want.MaxBytes && have.MaxAge == want.MaxAge &&
		have.MaxMsgSize == want.MaxMsgSize && have.Discard == want.Discard
}

// isClosing reports whether Close has been called, or the connection has
// closed.
func (q *Queue) isClosing() bool {
	select {
	case <-q.stopping:
		return true
	default:
		return q.nc.IsClosed()
	}
}

// Setup creates or updates the streams and the farm's object store: the
// scheduler's work, which only its user's permissions allow. A stream
// whose settings already match is left alone: every scheduler of a farm
// sets up, and updating a stream while another process creates a consumer
// on it races inside nats-server (seen with -race on v2.15.2).
func (q *Queue) Setup(ctx context.Context) error {
	for _, sc := range q.streamConfigs() {
		// A look of its own time: a cluster without its leaders yet does
		// not answer, and place below waits for it.
		lctx, lcancel := context.WithTimeout(ctx, placeAttempt)
		st, err := q.js.Stream(lctx, sc.Name)
		lcancel()
		if err == nil && sameStream(st.CachedInfo().Config, sc) {
			continue
		}
		err = q.place(ctx, "stream "+sc.Name, func(ctx context.Context) error {
			var err error
			st, err = q.js.CreateOrUpdateStream(ctx, sc)
			return err
		})
		if err != nil {
			return fmt.Errorf("create stream %s: %w", sc.Name, explainReplicas(explainLimit(err, "--stream-max-bytes"), sc.Replicas))
		}
		if have := st.CachedInfo().Config.Replicas; have != sc.Replicas {
			return fmt.Errorf("stream %s has %d replicas after an update to %d; the NATS server did not change them: update it by hand (nats stream edit %s --replicas %d)", sc.Name, have, sc.Replicas, sc.Name, sc.Replicas)
		}
		// A stream an earlier version filled past the cap keeps what it
		// has, and takes nothing more.
		if info := st.CachedInfo(); sc.MaxBytes > 0 && info.State.Bytes >= uint64(sc.MaxBytes) {
			q.log.Warn("a stream holds more than its cap: it takes no more messages until the cap is raised", "stream", sc.Name, "bytes", info.State.Bytes, "cap", sc.MaxBytes, "fix", "raise --stream-max-bytes (or --dead-letter-max-bytes)")
		}
	}
	if q.cfg.SchedulerName != "" {
		if err := q.removeSharedConsumers(ctx); err != nil {
			return err
		}
	}
	var obs jetstream.ObjectStore
	err := q.place(ctx, "object store "+BucketObjects, func(ctx context.Context) error {
		var err error
		obs, err = q.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      BucketObjects,
			Description: "Lantern's build logs and artefacts, named by their sha256 digest",
			Storage:     jetstream.FileStorage,
			Replicas:    q.cfg.Replicas,
			MaxBytes:    q.cfg.BucketMaxBytes,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("create object store %s: %w", BucketObjects, explainReplicas(explainLimit(err, "--bucket-max-bytes"), q.cfg.Replicas))
	}
	q.objMu.Lock()
	q.objects = obs
	q.objMu.Unlock()
	return nil
}

// removeSharedConsumers deletes the consumers that farms before named
// schedulers shared (scheduler-claims, -results, -dead): a named scheduler
// reads every message through consumers of its own, from the first, and a
// shared one left there would keep the streams' messages for nobody. An
// unnamed scheduler still running on the farm makes them again, and then
// splits the messages with nobody: every scheduler of a farm must be named.
func (q *Queue) removeSharedConsumers(ctx context.Context) error {
	for stream, name := range map[string]string{StreamClaims: ConsumerClaims, StreamResults: ConsumerResults, StreamDead: ConsumerDead} {
		err := q.js.DeleteConsumer(ctx, stream, name)
		switch {
		case err == nil:
			q.log.Info("deleted the consumer of the farm's unnamed scheduler: this scheduler reads the stream with its own", "stream", stream, "consumer", name, "own", SchedulerConsumer(q.cfg.SchedulerName, strings.TrimPrefix(name, "scheduler-")))
		case errors.Is(err, jetstream.ErrConsumerNotFound):
		default:
			return fmt.Errorf("delete consumer %s of %s: %w", name, stream, err)
		}
	}
	return nil
}

func (q *Queue) streamConfigs() []jetstream.StreamConfig {
	// Discard new: a full stream refuses what comes next, so that a flood
	// can neither push out the record nor a job nobody has taken yet.
	stream := func(name string, subjects []string, maxBytes int64, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    subjects,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    maxBytes,
			MaxAge:      q.cfg.StreamMaxAge,
			MaxMsgSize:  q.cfg.MaxMsgSize,
			Storage:     jetstream.FileStorage,
			Replicas:    q.cfg.Replicas,
			Duplicates:  q.cfg.DuplicateWindow,
			AllowDirect: true,
		}
	}
	return []jetstream.StreamConfig{
		stream(StreamClaims, []string{SubjectClaims, SubjectClaimsAPI}, q.cfg.StreamMaxBytes, "Lantern source claims (DSSE envelopes), as posted"),
		stream(StreamJobs, []string{SubjectJobs + ".>"}, q.cfg.StreamMaxBytes, "Lantern rebuild jobs (lantern.Job JSON) on lantern.jobs.<recipe>"),
		stream(StreamResults, []string{SubjectResults + ".>"}, q.cfg.StreamMaxBytes, "Lantern rebuild attestations (DSSE envelopes) on lantern.results.<builder key id>"),
		stream(StreamDead, []string{SubjectDead}, q.cfg.DeadMaxBytes, "JetStream max-deliveries advisories of the builders' job consumers"),
		stream(StreamDiffs, []string{SubjectDiffs + ".>"}, q.cfg.DeadMaxBytes, "Lantern's difference reports: wanted (lantern.diffs.wanted.<key>) and made (lantern.diffs.made.<key>)"),
	}
}

// Close drains the connection: subscriptions finish what they hold and
// pending publishes are flushed, then it closes.
// Pulls waiting for messages (ConsumeClaims, JobConsumer.Next, ...) end
// first; those calls return an error wrapping nats.ErrConnectionClosed. A
// connection that cannot drain (it is reconnecting) is closed at once.
func (q *Queue) Close() error {
	q.stopOnce.Do(func() { close(q.stopping) })
	if err := q.nc.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		q.nc.Close()
		return fmt.Errorf("close nats connection: %w", err)
	}
	<-q.closed
	return nil
}

// CheckSchedulerName reports whether name can name a scheduler: 1 to 32
// letters, digits, "-" and "_".
func CheckSchedulerName(name string) error {
	if name == "" || len(name) > 32 {
		return fmt.Errorf("%q: want 1 to 32 letters, digits, - and _", name)
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%q: character %q at %d; want letters, digits, - and _", name, r, i)
		}
	}
	return nil
}

// SchedulerConsumer returns the name of scheduler name's own consumer of
// what ("claims", "results", "dead" or "diffs"): scheduler-<name>-<what>;
// for the empty name, scheduler-<what>.
func SchedulerConsumer(name, what string) string {
	if name == "" {
		return "scheduler-" + what
	}
	return "scheduler-" + name + "-" + what
}

// JobSubject returns the subject of the job id of recipe,
// lantern.jobs.<recipe>.<id>: one subject per job, so that the stream can
// tell whether a job is queued already (see [Queue.PublishJobs]).
func JobSubject(recipe, id string) (string, error) {
	if err := checkToken(recipe); err != nil {
		return "", fmt.Errorf("recipe %q: %w", recipe, err)
	}
	if err := checkToken(id); err != nil {
		return "", fmt.Errorf("job id %q: %w", id, err)
	}
	return SubjectJobs + "." + recipe + "." + id, nil
}

// ResultSubject returns the subject of builder's results,
// lantern.results.<64 hex of the key id>.
func ResultSubject(builder lantern.Digest) (string, error) {
	if builder.IsZero() {
		return "", errors.New("builder key id is empty")
	}
	return SubjectResults + "." + builder.Hex(), nil
}

// ConsumerName returns the name of builder's durable consumer on
// LANTERN_JOBS: "builder-" and the first 16 hex digits of its key id; ""
// for the zero Digest.
func ConsumerName(builder lantern.Digest) string {
	if builder.IsZero() {
		return ""
	}
	return builderConsumerPrefix + builder.Hex()[:16]
}

// checkToken reports whether s can be one token of a subject.
func checkToken(s string) error {
	if s == "" {
		return errors.New("empty; want a subject token")
	}
	if i := strings.IndexAny(s, ".*> \t\r\n"); i >= 0 {
		return fmt.Errorf("character %q at %d cannot be in a subject token", s[i], i)
	}
	return nil
}

// PublishClaim publishes a source-claim envelope and waits for the stream
// to store it: a scheduler's connection on lantern.claims.api (the claims
// its API took), any other on lantern.claims. The same envelope published
// again within the duplicate window is stored once.
func (q *Queue) PublishClaim(ctx context.Context, envelope []byte) error {
	id := lantern.DigestOf(envelope).Hex()
	subj := SubjectClaims
	if q.cfg.Role == RoleScheduler {
		subj = SubjectClaimsAPI
	}
	err := q.retry(ctx, "publish claim sha256:"+id[:12], attemptTimeout, func(ctx context.Context) error {
		_, err := q.js.Publish(ctx, subj, envelope, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamClaims))
		return err
	})
	if err != nil {
		return fmt.Errorf("publish claim sha256:%s: %w", id[:12], explainLimit(err, "--stream-max-bytes"))
	}
	return nil
}

// PublishResult publishes builder's attestation envelope on
// lantern.results.<builder> and waits for the stream to store it.
func (q *Queue) PublishResult(ctx context.Context, builder lantern.Digest, envelope []byte) error {
	id := lantern.DigestOf(envelope).Hex()
	subj, err := ResultSubject(builder)
	if err != nil {
		return fmt.Errorf("publish result sha256:%s: %w", id[:12], err)
	}
	// Its Nats-Msg-Id makes a repeat harmless: tried again while the
	// stream's leader is away.
	err = q.retry(ctx, "publish result sha256:"+id[:12], attemptTimeout, func(ctx context.Context) error {
		_, err := q.js.Publish(ctx, subj, envelope, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamResults))
		return err
	})
	if err != nil {
		return fmt.Errorf("publish result sha256:%s of %s: %w", id[:12], builder.Short(), explainLimit(err, "--stream-max-bytes"))
	}
	return nil
}

// publishWindow is how many job publishes may wait for their acks at once.
const publishWindow = 512

// PublishJobs publishes every job on lantern.jobs.<recipe>.<job id>, with
// the job id as Nats-Msg-Id, and waits until the stream has stored them
// all. Each is published only if its subject holds no message yet
// (Nats-Expected-Last-Subject-Sequence 0): a job is queued once, however
// often and however late it is published again, by one scheduler or by
// several that read the same claims; a job queued already counts as
// published. Every job is checked before any is published.
func (q *Queue) PublishJobs(ctx context.Context, jobs []lantern.Job) error {
	msgs := make([]*nats.Msg, len(jobs))
	for i, j := range jobs {
		if j.ID == "" {
			return fmt.Errorf("publish job %d of %d: empty id", i+1, len(jobs))
		}
		subj, err := JobSubject(j.Recipe, j.ID)
		if err != nil {
			return fmt.Errorf("publish job %s: %w", j.ID, err)
		}
		data, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("publish job %s: %w", j.ID, err)
		}
		msgs[i] = &nats.Msg{Subject: subj, Data: data}
	}
	for start := 0; start < len(msgs); start += publishWindow {
		end := min(start+publishWindow, len(msgs))
		acks := make([]jetstream.PubAckFuture, 0, end-start)
		for i := start; i < end; i++ {
			f, err := q.js.PublishMsgAsync(msgs[i], jetstream.WithMsgID(jobs[i].ID), jetstream.WithExpectStream(StreamJobs), jetstream.WithExpectLastSequencePerSubject(0))
			if err != nil {
				return fmt.Errorf("publish job %s: %w", jobs[i].ID, err)
			}
			acks = append(acks, f)
		}
		for k, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				if isWrongLastSeq(err) {
					continue // queued already
				}
				return fmt.Errorf("publish job %s: %w", jobs[start+k].ID, explainLimit(err, "--stream-max-bytes"))
			case <-ctx.Done():
				return fmt.Errorf("publish job %s: %w", jobs[start+k].ID, ctx.Err())
			}
		}
	}
	return nil
}

// explainLimit adds to an error of the NATS server that is one of the
// farm's limits what to do about it; setting is the scheduler's flag that
// sets the limit.
func explainLimit(err error, setting string) error {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch {
	case ae.ErrorCode == jsErrStorageResources:
		return fmt.Errorf("%w: the NATS server cannot reserve that much of its store for the farm's streams and buckets; lower %s (or another of the farm's max-bytes settings), or give the server more disk (max_file_store)", err, setting)
	case ae.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return fmt.Errorf("%w: larger than the stream takes (--max-msg-size)", err)
	case strings.Contains(ae.Description, "maximum bytes exceeded"):
		return fmt.Errorf("%w: the stream is full; the farm's operator can raise %s", err, setting)
	}
	return err
}

// isWrongLastSeq reports whether err is the stream's refusal of a message
// published only if its subject holds none yet, because it holds one: a
// standalone stream says so with one code, a replicated one with another.
func isWrongLastSeq(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// jsErrStorageResources is the NATS server's error code for "insufficient
// storage resources available" (JSStorageResourcesExceededErr).
const jsErrStorageResources jetstream.ErrorCode = 10047
