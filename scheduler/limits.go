package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/lanternfarm/lantern"
)

// Defaults of the farm's limits.
const (
	DefaultClaimsPerMinute   = 600
	DefaultOutputRetention   = 14 * 24 * time.Hour
	DefaultRetentionSweep    = time.Hour
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 2 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// HTTPLimits bound what one client may hold of the API's server: a client
// that sends its headers or its body slowly, or never reads its answer,
// is cut off. Zero fields are the defaults.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers (default 10 s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, its body included
	// (default 30 s): bodies are one envelope (Config.MaxBody).
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from its headers to the end of its
	// answer (default 2 minutes). The API has no streamed answers; one
	// that comes must extend its own deadline (http.ResponseController).
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection waits for its
	// next request (default 2 minutes).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (default 64 KiB).
	MaxHeaderBytes int
}

// Server returns an HTTP server of h within l.
func (l HTTPLimits) Server(h http.Handler) *http.Server {
	def := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	maxHeader := l.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeaderBytes
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: def(l.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       def(l.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      def(l.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       def(l.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    maxHeader,
	}
}

// claimLimiter is a token bucket per claim key: each key may post perMinute
// claims a minute, burst at once. Only keys whose signatures checked out
// are in it, so it is as large as the farm's list of claim keys.
type claimLimiter struct {
	perSecond float64 // 0: no limit
	burst     float64

	mu      sync.Mutex
	buckets map[lantern.Digest]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// newClaimLimiter returns the limiter of perMinute claims a minute and
// burst at once per key; perMinute < 0 is no limit.
func newClaimLimiter(perMinute, burst int) *claimLimiter {
	if perMinute < 0 {
		return &claimLimiter{}
	}
	return &claimLimiter{perSecond: float64(perMinute) / 60, burst: float64(burst), buckets: map[lantern.Digest]*tokenBucket{}}
}

// take takes one token of key's bucket at now, or reports how long until
// there is one.
func (l *claimLimiter) take(key lantern.Digest, now time.Time) (bool, time.Duration) {
	if l.perSecond == 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		b = &tokenBucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.perSecond)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.perSecond * float64(time.Second))
}

// ErrRateLimited reports a claim key that posted more claims than the
// farm takes a minute from one key.
var ErrRateLimited = errors.New("too many claims from one key")

// RateLimitError is ErrRateLimited with when to try again.
type RateLimitError struct {
	Key        lantern.Digest
	PerMinute  int
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("claim key %s: %v: more than %d a minute; try again in %s", e.Key.Short(), ErrRateLimited, e.PerMinute, e.RetryAfter.Round(time.Second))
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// retryAfterSeconds is RetryAfter in whole seconds, rounded up, for the
// Retry-After header.
func (e *RateLimitError) retryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// limitClaim takes a token of the key that signed vc, or returns a
// *RateLimitError.
func (s *Scheduler) limitClaim(vc *verifiedClaim) error {
	ok, wait := s.claimLimit.take(vc.rec.Signer, s.cfg.Now())
	if ok {
		return nil
	}
	s.metrics.claims.WithLabelValues("limited").Inc()
	return &RateLimitError{Key: vc.rec.Signer, PerMinute: s.cfg.ClaimsPerMinute, RetryAfter: wait}
}

// limitStreamClaim takes a token of the key that signed vc, a new claim
// off the claims' stream, at the time the stream took it (at; zero: now),
// or returns a *RateLimitError. Every scheduler of a farm reads the same
// claims in the same order, so they count alike and keep the same ones,
// however late or fast each reads them: a scheduler that joins the farm,
// or reads a backlog, would otherwise drop claims that kept to the rate.
func (s *Scheduler) limitStreamClaim(vc *verifiedClaim, at time.Time) error {
	if at.IsZero() {
		at = s.cfg.Now()
	}
	ok, wait := s.streamClaimLimit.take(vc.rec.Signer, at)
	if ok {
		return nil
	}
	return &RateLimitError{Key: vc.rec.Signer, PerMinute: s.cfg.ClaimsPerMinute, RetryAfter: wait}
}

// OutputRemover removes what builders uploaded of their outputs from the
// object store (natsq.Queue is one); their build logs stay. The scheduler
// removes an output once its difference report is made, and every output
// after Config.OutputRetention, when its Queue is an OutputRemover.
type OutputRemover interface {
	// RemoveOutput removes the output d from every bucket that holds it.
	RemoveOutput(ctx context.Context, d lantern.Digest) error
	// RemoveOutputsBefore removes every output uploaded before t, and
	// what is left of uploads that never finished; it reports how many
	// outputs it removed.
	RemoveOutputsBefore(ctx context.Context, t time.Time) (int, error)
}

// runRetention removes the outputs older than Config.OutputRetention, at
// start and then every Config.RetentionSweep, until ctx ends.
func (s *Scheduler) runRetention(ctx context.Context, r OutputRemover) error {
	t := time.NewTicker(s.cfg.RetentionSweep)
	defer t.Stop()
	for {
		n, err := r.RemoveOutputsBefore(ctx, s.cfg.Now().Add(-s.cfg.OutputRetention))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.log.Warn("removing old outputs from the object store failed; trying again later", "error", err)
		case n > 0:
			s.log.Info("old outputs removed from the object store", "outputs", n, "older than", s.cfg.OutputRetention)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// releaseOutputs removes the outputs of the report d, which is made or
// failed for good, unless another pending report still needs them. What
// it cannot remove now is tried again by retryReleases (runDiffs calls it
// on every wake-up).
func (s *Scheduler) releaseOutputs(ctx context.Context, d DiffRecord) {
	if _, ok := s.q.(OutputRemover); !ok {
		return
	}
	s.releaseMu.Lock()
	s.unreleased = append(s.unreleased, d.A, d.B)
	s.releaseMu.Unlock()
	s.retryReleases(ctx)
}

// releasesLeft reports whether outputs wait to be removed.
func (s *Scheduler) releasesLeft() bool {
	s.releaseMu.Lock()
	defer s.releaseMu.Unlock()
	return len(s.unreleased) > 0
}

// retryReleases removes the outputs releaseOutputs let go of, but those a
// pending report needs; it keeps what it could not remove for the next
// try.
func (s *Scheduler) retryReleases(ctx context.Context) {
	s.releaseMu.Lock()
	defer s.releaseMu.Unlock()
	r, ok := s.q.(OutputRemover)
	if !ok || len(s.unreleased) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pending, err := s.st.PendingDiffs(ctx, 1000)
	if err != nil {
		s.log.Warn("outputs kept for now: the pending reports cannot be read", "error", err)
		return
	}
	needed := map[lantern.Digest]bool{}
	for _, p := range pending {
		needed[p.A], needed[p.B] = true, true
	}
	var left []lantern.Digest
	for _, out := range s.unreleased {
		if needed[out] {
			continue // its last report removes it
		}
		if err := r.RemoveOutput(ctx, out); err != nil {
			s.log.Warn("output not removed from the object store; trying again later", "output", out.Short(), "error", err)
			left = append(left, out)
		}
	}
	s.unreleased = left
}
