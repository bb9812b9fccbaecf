package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

// limitSettings are the farm's limits, flags of the commands that run a
// scheduler ('lantern scheduler' and 'lantern up').
type limitSettings struct {
	http                        scheduler.HTTPLimits
	claimsPerMinute, claimBurst int
	outputDays                  int
	streamMaxAge                time.Duration
	streamMaxBytes, deadMaxBytes, maxMsgSize,
	bucketMaxBytes, builderBucketMaxBytes byteSize
	envErr error // a LANTERN_ variable of one of them that does not parse
}

// limitFlags defines the limits' flags on f; each takes its default from
// the environment variable that --help names.
func limitFlags(f *flag.FlagSet) *limitSettings {
	l := &limitSettings{
		streamMaxBytes: natsq.DefaultStreamMaxBytes, deadMaxBytes: natsq.DefaultDeadMaxBytes, maxMsgSize: natsq.DefaultMaxMsgSize,
		bucketMaxBytes: natsq.DefaultBucketMaxBytes, builderBucketMaxBytes: natsq.DefaultBuilderBucketMaxBytes,
	}
	var names []string
	def := func(name string) string { names = append(names, name); return name }
	f.IntVar(&l.claimsPerMinute, def("claims-per-minute"), scheduler.DefaultClaimsPerMinute, "`N` claims a minute that one claim key may post, to the API (past it: 429 with Retry-After) or on NATS (past it: dropped); 0: no limit")
	f.IntVar(&l.claimBurst, def("claim-burst"), 0, "`N` claims one claim key may post at once (default: --claims-per-minute)")
	f.DurationVar(&l.http.ReadHeaderTimeout, def("http-read-header-timeout"), scheduler.DefaultReadHeaderTimeout, "how long the API waits for a request's headers")
	f.DurationVar(&l.http.ReadTimeout, def("http-read-timeout"), scheduler.DefaultReadTimeout, "how long the API waits for a whole request, its body included")
	f.DurationVar(&l.http.WriteTimeout, def("http-write-timeout"), scheduler.DefaultWriteTimeout, "how long the API may take from a request's headers to the end of its answer")
	f.DurationVar(&l.http.IdleTimeout, def("http-idle-timeout"), scheduler.DefaultIdleTimeout, "how long a kept-alive connection to the API waits for its next request")
	f.IntVar(&l.http.MaxHeaderBytes, def("http-max-header-bytes"), scheduler.DefaultMaxHeaderBytes, "`BYTES` of a request's headers the API reads at most")
	f.Var(&l.streamMaxBytes, def("stream-max-bytes"), "`SIZE` of each of the claims, jobs and results streams (such as 512MiB, 4GiB; -1: no limit); a full stream refuses what comes next. NATS reserves every stream's and bucket's size in its store")
	f.Var(&l.deadMaxBytes, def("dead-letter-max-bytes"), "`SIZE` of the dead-letter stream")
	f.DurationVar(&l.streamMaxAge, def("stream-max-age"), 0, "how long the streams keep a message (0: for ever; a reindex rebuilds the store from what they keep)")
	f.Var(&l.maxMsgSize, def("max-msg-size"), "`SIZE` of one claim, job or result on the streams")
	f.Var(&l.bucketMaxBytes, def("bucket-max-bytes"), "`SIZE` of the farm's object store bucket, its difference reports")
	f.Var(&l.builderBucketMaxBytes, def("builder-bucket-max-bytes"), "`SIZE` of each builder's object store bucket: what one builder may have uploaded, logs and outputs")
	f.IntVar(&l.outputDays, def("output-retention-days"), int(scheduler.DefaultOutputRetention/(24*time.Hour)), "`DAYS` an output a worker uploaded is kept (it goes sooner once its difference report is made); build logs are kept")
	for _, name := range names {
		fl := f.Lookup(name)
		env := "LANTERN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		fl.Usage += " ($" + env + ")"
		if v, ok := os.LookupEnv(env); ok && v != "" {
			if err := fl.Value.Set(v); err != nil && l.envErr == nil {
				l.envErr = fmt.Errorf("$%s: %v", env, err)
			}
			fl.DefValue = v
		}
	}
	return l
}

// check returns a usage error for a limit out of range.
func (l *limitSettings) check() error {
	if l.envErr != nil {
		return usagef("%v", l.envErr)
	}
	for name, v := range map[string]time.Duration{
		"--http-read-header-timeout": l.http.ReadHeaderTimeout, "--http-read-timeout": l.http.ReadTimeout,
		"--http-write-timeout": l.http.WriteTimeout, "--http-idle-timeout": l.http.IdleTimeout,
	} {
		if v <= 0 {
			return usagef("%s %s: want a positive duration such as 30s", name, v)
		}
	}
	switch {
	case l.claimsPerMinute < 0:
		return usagef("--claims-per-minute %d: want 0 (no limit) or more", l.claimsPerMinute)
	case l.claimBurst < 0:
		return usagef("--claim-burst %d: want 1 or more", l.claimBurst)
	case l.http.MaxHeaderBytes < 1024:
		return usagef("--http-max-header-bytes %d: want at least 1024", l.http.MaxHeaderBytes)
	case l.streamMaxAge < 0:
		return usagef("--stream-max-age %s: want 0 (for ever) or a positive duration", l.streamMaxAge)
	case l.outputDays < 1:
		return usagef("--output-retention-days %d: want at least 1", l.outputDays)
	case l.maxMsgSize > 1<<30:
		return usagef("--max-msg-size %s: want at most 1GiB", l.maxMsgSize)
	}
	for name, v := range map[string]byteSize{
		"--stream-max-bytes": l.streamMaxBytes, "--dead-letter-max-bytes": l.deadMaxBytes, "--max-msg-size": l.maxMsgSize,
		"--bucket-max-bytes": l.bucketMaxBytes, "--builder-bucket-max-bytes": l.builderBucketMaxBytes,
	} {
		if v == 0 || v < -1 {
			return usagef("%s %s: want a size such as 1GiB, or -1 for no limit", name, v)
		}
	}
	return nil
}

// queue returns c with the limits of the streams and buckets.
func (l *limitSettings) queue(c natsq.Config) natsq.Config {
	c.StreamMaxBytes, c.DeadMaxBytes, c.StreamMaxAge = int64(l.streamMaxBytes), int64(l.deadMaxBytes), l.streamMaxAge
	c.MaxMsgSize = int32(l.maxMsgSize)
	c.BucketMaxBytes, c.BuilderBucketMaxBytes = int64(l.bucketMaxBytes), int64(l.builderBucketMaxBytes)
	return c
}

// scheduler sets the scheduler's limits in c.
func (l *limitSettings) scheduler(c *scheduler.Config) {
	c.ClaimsPerMinute, c.ClaimBurst = l.claimsPerMinute, l.claimBurst
	c.MaxJobBytes = int(l.maxMsgSize) // a job is one message; -1: no limit
	if l.claimsPerMinute == 0 {
		c.ClaimsPerMinute = -1 // no limit
	}
	c.OutputRetention = time.Duration(l.outputDays) * 24 * time.Hour
}

// byteSize is a flag of a size in bytes: a number, with a unit (B, KiB,
// MiB, GiB, TiB; K, M, G, T are the same) or without; -1 is no limit.
type byteSize int64

var byteUnits = []struct {
	suffix string
	n      int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}

func (b byteSize) String() string {
	if b <= 0 {
		return strconv.FormatInt(int64(b), 10)
	}
	for _, u := range byteUnits[:4] {
		if int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

func (b *byteSize) Set(s string) error {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || (n < 0 && !(n == -1 && mult == 1)) || n > (1<<62)/mult {
		return fmt.Errorf("size %q: want a number of bytes, with a unit such as MiB or GiB, or -1 for no limit", s)
	}
	*b = byteSize(n * mult)
	return nil
}
