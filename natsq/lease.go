package natsq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A scheduler's name is held by one running scheduler at a time: two that
// share one would split its durable consumers' messages between them, and
// each store would miss what the other took. The hold is a record in the
// key-value bucket LANTERN_SCHEDULERS (stream KV_LANTERN_SCHEDULERS, on
// Config.Replicas servers), under the scheduler's name, that its holder
// rewrites every NameTTL/5 with a revision-checked update: the stream's
// leader takes a write only if the record is still at the revision its
// writer read, so exactly one scheduler holds a name, whatever reads may lag.
// No clock is compared across machines:
//
//   - A scheduler that starts finds the record absent or released and
//     creates it; or finds it and watches it: if it changes, its holder is
//     alive and the newcomer refuses to start ([NameHeldError]); if it stays
//     the same for NameTTL, its holder is taken for dead (kill -9, a lost
//     machine) and the newcomer takes the name over, at the revision it
//     watched.
//   - The holder takes messages only while its last confirmed rewrite was
//     sent less than NameTTL/2 ago; one that cannot rewrite (cut off from
//     the bucket's leader) stops taking messages until it can, well before
//     a newcomer may take the name over.
//   - A holder whose rewrite finds the record changed by another (it was
//     cut off for longer than NameTTL, and a newcomer took the name) has
//     lost it: the later starter keeps the name. The loser says so in its
//     log and on /metrics, and takes no messages until it is restarted.
//   - A holder that stops cleanly deletes its record (at its revision), so
//     that its successor starts at once.

// BucketSchedulers is the key-value bucket of the names of the farm's
// running schedulers: only the scheduler's user may read or write it.
const BucketSchedulers = "LANTERN_SCHEDULERS"

// DefaultNameTTL is Config.NameTTL's default.
const DefaultNameTTL = 15 * time.Second

// Holder is what a scheduler's record in LANTERN_SCHEDULERS says of the
// scheduler that holds the name: where it runs, for a newcomer's refusal.
type Holder struct {
	// Instance tells one process's hold from another's: random.
	Instance string    `json:"instance"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Since    time.Time `json:"since"` // by the holder's clock
	// API is the holder's --listen address.
	API string `json:"api,omitempty"`
}

// String says where the holder runs, for people. The record is read from
// the bucket, so its fields are shown cut to maxShown bytes and quoted
// where they hold anything but printable characters (a terminal's escape
// sequences).
func (h Holder) String() string {
	s := "on host " + shown(h.Host)
	if h.Host == "" {
		s = "on an unnamed host"
	}
	if h.PID != 0 {
		s += fmt.Sprintf(", pid %d", h.PID)
	}
	if h.API != "" {
		s += ", API " + shown(h.API)
	}
	if !h.Since.IsZero() {
		s += ", since " + h.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// maxShown bounds each field of a Holder as String shows it.
const maxShown = 256

// shown is s cut to maxShown bytes, quoted if it holds a character that
// is not printable.
func shown(s string) string {
	cut := len(s) > maxShown
	if cut {
		s = strings.ToValidUTF8(s[:maxShown], "")
	}
	if q := strconv.QuoteToGraphic(s); q[1:len(q)-1] != s {
		s = q
	}
	if cut {
		s += "..."
	}
	return s
}

// NameHeldError is a scheduler's refusal to start: another live scheduler
// holds its name.
type NameHeldError struct {
	Name   string
	Holder Holder
}

func (e *NameHeldError) Error() string {
	return fmt.Sprintf("scheduler name %q is held by another scheduler that is running (%s)", e.Name, e.Holder)
}

// NameLease is a running scheduler's hold on its name (see
// [Queue.HoldName]): it rewrites its record until Release.
type NameLease struct {
	q     *Queue
	kv    jetstream.KeyValue
	name  string
	ttl   time.Duration
	me    Holder
	value []byte

	mu        sync.Mutex
	rev       uint64
	confirmed time.Time     // when the last confirmed rewrite was sent
	valid     bool          // messages may be taken
	takenBy   *Holder       // the scheduler that took the name; nil: none
	changed   chan struct{} // closed, and replaced, on every change of valid
	released  bool
	// lapse ends valid NameTTL/2 after confirmed, unless a later rewrite
	// is confirmed first: on time, however long a rewrite waits for its
	// answer.
	lapse *time.Timer

	stop chan struct{}
	done chan struct{}
}

// HoldName takes the scheduler's name (Config.SchedulerName) in
// LANTERN_SCHEDULERS, which it creates if need be, and keeps it until
// [NameLease.Release]: from then on the queue's consumers take messages
// only while the name is held. It returns a *[NameHeldError] when another
// live scheduler holds the name; when the name's record stands unchanged,
// it waits up to Config.NameTTL before taking it over. me says where this
// scheduler runs; its Instance is made here.
func (q *Queue) HoldName(ctx context.Context, me Holder) (*NameLease, error) {
	return q.holdName(ctx, me, false)
}

// holdName is HoldName; with force, it writes the record whoever holds it,
// as a newcomer does once the holder has been silent for the TTL.
func (q *Queue) holdName(ctx context.Context, me Holder, force bool) (*NameLease, error) {
	name := q.cfg.SchedulerName
	if name == "" {
		return nil, errors.New("hold the scheduler's name: the scheduler has none (Config.SchedulerName)")
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("hold the scheduler's name: %w", err)
	}
	me.Instance = hex.EncodeToString(r[:])
	if me.Since.IsZero() {
		me.Since = time.Now()
	}
	value, err := json.Marshal(me)
	if err != nil {
		return nil, fmt.Errorf("hold the scheduler's name: %w", err)
	}
	kv, err := q.namesBucket(ctx)
	if err != nil {
		return nil, err
	}
	l := &NameLease{
		q: q, kv: kv, name: name, ttl: q.cfg.NameTTL, me: me, value: value,
		changed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if force {
		sent := time.Now()
		rev, err := kv.Put(ctx, name, value)
		if err != nil {
			return nil, fmt.Errorf("hold scheduler name %q: %w", name, err)
		}
		l.held(rev, sent)
	} else if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	q.mu.Lock()
	q.lease = l
	q.mu.Unlock()
	go l.run()
	return l, nil
}

// namesBucket binds LANTERN_SCHEDULERS, and creates it, or brings it to
// Config.Replicas, if need be. One the farm has with the replicas wanted is
// left alone, as Setup leaves streams.
func (q *Queue) namesBucket(ctx context.Context) (jetstream.KeyValue, error) {
	lctx, cancel := context.WithTimeout(ctx, placeAttempt)
	kv, err := q.js.KeyValue(lctx, BucketSchedulers)
	if err == nil {
		var st jetstream.KeyValueStatus
		if st, err = kv.Status(lctx); err == nil {
			if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo().Config.Replicas == q.cfg.Replicas {
				cancel()
				return kv, nil
			}
		}
	}
	cancel()
	err = q.place(ctx, "key-value bucket "+BucketSchedulers, func(ctx context.Context) error {
		var err error
		kv, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       BucketSchedulers,
			Description:  "Lantern: which running scheduler holds each scheduler name",
			History:      1,
			MaxValueSize: 4 << 10,
			MaxBytes:     4 << 20,
			Storage:      jetstream.FileStorage,
			Replicas:     q.cfg.Replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create key-value bucket %s: %w", BucketSchedulers, explainReplicas(err, q.cfg.Replicas))
	}
	return kv, nil
}

// namePoll is how often a starting scheduler reads a held name's record.
const namePoll = 250 * time.Millisecond

// acquire takes the name: at once if it is free, or once its record has
// stood unchanged for the TTL; a record that changes meanwhile is a live
// holder's.
func (l *NameLease) acquire(ctx context.Context) error {
	var watched uint64 // the revision watched since watchedAt
	var watchedAt time.Time
	var firstWrite time.Time // when the first write of the record was sent
	write := func() {
		if firstWrite.IsZero() {
			firstWrite = time.Now()
		}
	}
	for {
		sent := time.Now()
		e, err := l.get(ctx)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			write()
			rev, err := l.kv.Create(ctx, l.name, l.value)
			if err == nil {
				l.held(rev, sent)
				return nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) && !transient(err) {
				return fmt.Errorf("hold scheduler name %q: %w", l.name, err)
			}
			// Another took it first, or our create was stored and its
			// answer lost: the next read tells.
		case err != nil:
			return fmt.Errorf("hold scheduler name %q: %w", l.name, err)
		case l.mine(e):
			// Our own write, whose answer was lost: confirmed as of the
			// first one sent, not of this read, which may come long after
			// (a newcomer counts the TTL from when the record was written).
			l.held(e.Revision(), firstWrite)
			return nil
		case e.Revision() != watched:
			if watched != 0 {
				return &NameHeldError{Name: l.name, Holder: parseHolder(e.Value())}
			}
			watched, watchedAt = e.Revision(), time.Now()
			l.q.log.Warn("the scheduler name is held: waiting to see whether its holder is alive", "name", l.name, "holder", parseHolder(e.Value()).String(), "wait", l.ttl)
		case time.Since(watchedAt) >= l.ttl:
			write()
			rev, err := l.kv.Update(ctx, l.name, l.value, watched)
			if err == nil {
				l.q.log.Warn("took the scheduler name over: its holder did not renew it for the TTL (it died, or is cut off from NATS)", "name", l.name, "holder", parseHolder(e.Value()).String(), "ttl", l.ttl)
				l.held(rev, sent)
				return nil
			}
			if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !transient(err) {
				return fmt.Errorf("hold scheduler name %q: %w", l.name, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hold scheduler name %q: %w", l.name, ctx.Err())
		case <-time.After(namePoll):
		}
	}
}

// get reads the name's record, trying again while a node or leader is
// away.
func (l *NameLease) get(ctx context.Context) (jetstream.KeyValueEntry, error) {
	var e jetstream.KeyValueEntry
	err := l.q.retry(ctx, "read scheduler name "+l.name, attemptTimeout, func(ctx context.Context) error {
		var err error
		e, err = l.kv.Get(ctx, l.name)
		return err
	})
	return e, err
}

func (l *NameLease) mine(e jetstream.KeyValueEntry) bool {
	return parseHolder(e.Value()).Instance == l.me.Instance
}

// parseHolder reads a record; what it cannot read says nothing.
func parseHolder(b []byte) Holder {
	var h Holder
	_ = json.Unmarshal(b, &h)
	return h
}

// held records a confirmed write of revision rev, sent at sent.
func (l *NameLease) held(rev uint64, sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rev = rev
	if sent.After(l.confirmed) {
		l.confirmed = sent
	}
	l.setValid(l.takenBy == nil && !l.released)
	if l.lapse != nil {
		l.lapse.Stop()
	}
	l.lapse = time.AfterFunc(l.ttl/2-time.Since(l.confirmed), l.expire)
}

// fresh reports whether the last confirmed rewrite was sent less than
// NameTTL/2 ago: well before a newcomer, which waits for NameTTL of
// silence, may take the name over. l.mu is held.
func (l *NameLease) fresh() bool { return time.Since(l.confirmed) < l.ttl/2 }

// expire stops the taking of messages once the hold is not confirmed
// (l.lapse).
func (l *NameLease) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.valid && !l.fresh() {
		l.q.log.Warn("the hold on the scheduler name is not confirmed: taking no messages until it is", "name", l.name, "unconfirmed", time.Since(l.confirmed).Round(time.Millisecond))
		l.setValid(false)
	}
}

// setValid changes valid, waking those who wait on a change. l.mu is held.
func (l *NameLease) setValid(v bool) {
	if l.valid == v {
		return
	}
	l.valid = v
	close(l.changed)
	l.changed = make(chan struct{})
}

// interval is how often the holder rewrites its record.
func (l *NameLease) interval() time.Duration { return l.ttl / 5 }

// run rewrites the record every interval until Release, and stops the
// queue's consumers whenever the name is not surely held.
func (l *NameLease) run() {
	defer close(l.done)
	t := time.NewTicker(l.interval())
	defer t.Stop()
	failing := false
	var lostSaid time.Time
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if l.sayTaken(&lostSaid) {
			continue
		}
		err := l.renew()
		if l.sayTaken(&lostSaid) {
			continue
		}
		switch {
		case err != nil && !failing:
			l.q.log.Warn("cannot renew the hold on the scheduler name; retrying", "name", l.name, "err", err)
			failing = true
		case err == nil && failing:
			l.q.log.Info("renewed the hold on the scheduler name", "name", l.name)
			failing = false
		}
		l.expire()
	}
}

// sayTaken reports whether another scheduler took the name, and says so
// in the log: loud, and again every minute while this scheduler runs.
func (l *NameLease) sayTaken(said *time.Time) bool {
	taken, ok := l.Taken()
	if ok && time.Since(*said) >= time.Minute {
		l.q.log.Error("ANOTHER SCHEDULER HOLDS THIS SCHEDULER'S NAME: this one takes no messages (two would split them, and each store would miss what the other took)", "name", l.name, "holder", taken.String(), "fix", "stop this scheduler, or the other; if both are to run, restart this one with another --scheduler-name and --reindex")
		*said = time.Now()
	}
	return ok
}

// renew rewrites the record at the revision last written.
func (l *NameLease) renew() error {
	ctx, cancel := context.WithTimeout(context.Background(), max(l.interval(), time.Second))
	defer cancel()
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()
	sent := time.Now()
	next, err := l.kv.Update(ctx, l.name, l.value, rev)
	if err == nil {
		l.held(next, sent)
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return err
	}
	e, gerr := l.kv.Get(ctx, l.name)
	switch {
	case gerr == nil && l.mine(e):
		// A rewrite stored whose answer was lost: go on from it (the
		// next confirmed one confirms).
		l.mu.Lock()
		l.rev = e.Revision()
		l.mu.Unlock()
		return nil
	case gerr == nil, errors.Is(gerr, jetstream.ErrKeyNotFound):
		by := Holder{Host: "(the record was deleted: another scheduler held the name and stopped, or it was deleted by hand)"}
		if gerr == nil {
			by = parseHolder(e.Value())
		}
		l.mu.Lock()
		l.takenBy = &by
		l.setValid(false)
		l.mu.Unlock()
		return nil
	}
	return gerr
}

// Taken returns the scheduler that took the name from this one, if one did.
func (l *NameLease) Taken() (Holder, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.takenBy == nil {
		return Holder{}, false
	}
	return *l.takenBy, true
}

// Held reports whether the scheduler holds its name now: it takes
// messages only then.
func (l *NameLease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.valid && l.fresh()
}

// await waits until the name is held, and returns a channel closed when it
// no longer is; false when ctx ended first.
func (l *NameLease) await(ctx context.Context) (<-chan struct{}, bool) {
	for {
		l.mu.Lock()
		valid, changed := l.valid && l.fresh(), l.changed
		l.mu.Unlock()
		if valid {
			return changed, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-changed:
		}
	}
}

// Release stops renewing the hold and deletes the record, if it is still
// this scheduler's, so that the next scheduler of the name starts at once.
// Call it once the consumers have stopped.
func (l *NameLease) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.released = true
	l.setValid(false)
	if l.lapse != nil {
		l.lapse.Stop()
	}
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	// Read once the rewrites have stopped: one under way when Release was
	// called moves the revision, and a delete at the one before would
	// leave the record to stand for the TTL.
	l.mu.Lock()
	taken, rev := l.takenBy != nil, l.rev
	l.mu.Unlock()
	if taken {
		return nil
	}
	err := l.q.retry(ctx, "release scheduler name "+l.name, attemptTimeout, func(ctx context.Context) error {
		err := l.kv.Delete(ctx, l.name, jetstream.LastRevision(rev))
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return err
		}
		// A rewrite stored whose answer was lost moved the revision: the
		// record may still be ours.
		e, err := l.kv.Get(ctx, l.name)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return nil
		case err != nil:
			return err
		case !l.mine(e):
			return nil // not ours any more
		}
		// Ours, at a revision no rewrite moves now that they stopped.
		rev = e.Revision()
		err = l.kv.Delete(ctx, l.name, jetstream.LastRevision(rev))
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return nil // taken meanwhile
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("release scheduler name %q: %w", l.name, err)
	}
	return nil
}

// awaitName waits until the queue may take messages: at once without a
// hold on a name, else while the name is held. It returns a channel closed
// when that ends (nil: never), and false when ctx ended first.
func (q *Queue) awaitName(ctx context.Context) (<-chan struct{}, bool) {
	q.mu.Lock()
	l := q.lease
	q.mu.Unlock()
	if l == nil {
		return nil, ctx.Err() == nil
	}
	return l.await(ctx)
}

// NameHeld reports whether this scheduler holds its name (it takes
// messages only then; a queue that holds none takes them always), and
// whether another scheduler took the name from it: the scheduler's
// /metrics show both.
func (q *Queue) NameHeld() (held, taken bool) {
	q.mu.Lock()
	l := q.lease
	q.mu.Unlock()
	if l == nil {
		return true, false
	}
	_, taken = l.Taken()
	return l.Held(), taken
}
