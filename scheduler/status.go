package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lanternfarm/lantern"
)

// Unreachable says that a pending verdict cannot become reproduced with
// the builders the farm has: fewer are enrolled (and not revoked) than the
// threshold asks to agree. It is data on the API's answers, so that
// `lantern verdict --wait` and the dashboard say so instead of waiting.
type Unreachable struct {
	Threshold int `json:"threshold"`
	// Builders is how many builders the farm has (enrolled, not revoked).
	Builders int    `json:"builders"`
	Message  string `json:"message"`
}

// Reach returns why a verdict needing threshold builders cannot be
// reached on a farm of builders, or nil when it can.
func Reach(threshold, builders int) *Unreachable {
	if builders >= threshold {
		return nil
	}
	noun := "builders"
	if builders == 1 {
		noun = "builder"
	}
	return &Unreachable{
		Threshold: threshold, Builders: builders,
		Message: fmt.Sprintf("cannot be reached: threshold %d, the farm has %d %s (lantern builder add, or --threshold)", threshold, builders, noun),
	}
}

// VerdictReach returns why v, pending, cannot be reached on a farm of
// builders, or nil: it is not pending, or it can.
func VerdictReach(v lantern.Verdict, builders int) *Unreachable {
	if v.Status != lantern.StatusPending {
		return nil
	}
	return Reach(v.Threshold, builders)
}

// VerdictView is a verdict as the API shows it: the verdict, and where it
// is pending for good on this farm, why.
type VerdictView struct {
	lantern.Verdict
	Unreachable *Unreachable `json:"unreachable,omitempty"`
}

// enrolled counts the farm's builders that are not revoked.
func (s *Scheduler) enrolled() int {
	s.buildersMu.RLock()
	defer s.buildersMu.RUnlock()
	n := 0
	for _, e := range s.builders {
		if e.Revoked.IsZero() {
			n++
		}
	}
	return n
}

func (s *Scheduler) viewVerdicts(vs []lantern.Verdict) []VerdictView {
	n := s.enrolled()
	out := make([]VerdictView, 0, len(vs))
	for _, v := range vs {
		out = append(out, VerdictView{Verdict: v, Unreachable: VerdictReach(v, n)})
	}
	return out
}

// sourceReach is why a source's verdicts cannot all be reached: one is
// pending for good, or none is there yet and the farm cannot reach its
// threshold for any.
func (s *Scheduler) sourceReach(vs []VerdictView) *Unreachable {
	for _, v := range vs {
		if v.Unreachable != nil {
			return v.Unreachable
		}
	}
	if len(vs) == 0 {
		return Reach(s.cfg.Threshold, s.enrolled())
	}
	return nil
}

// BuilderQueues reads where each builder's queue of jobs stands; the
// scheduler's Queue is one (natsq.Queue), and `GET /api/v1/status` shows
// it when it is.
type BuilderQueues interface {
	BuilderQueue(ctx context.Context, builder lantern.Digest) (lantern.BuilderQueue, error)
}

// Bounds of what GET /api/v1/status reads, to keep it cheap on a farm of
// any age: each builder's latest attestations, the newest jobs, the newest
// sources.
const (
	StatusAttestations = 200
	StatusJobs         = 500
	StatusSources      = 10
)

// BuilderStatus is one builder as `lantern status` shows it.
type BuilderStatus struct {
	ID      lantern.Digest `json:"id"`
	Name    string         `json:"name,omitempty"`
	Added   time.Time      `json:"added"`
	Revoked time.Time      `json:"revoked,omitzero"`
	// Online says that a worker of it is there now, waiting for a job or
	// holding one (Queue); false when the queue could not be read.
	Online bool `json:"online"`
	// LastSeen is the latest of its last attestation's receipt and its
	// workers' last take or answer of a job.
	LastSeen        time.Time `json:"lastSeen,omitzero"`
	LastAttestation time.Time `json:"lastAttestation,omitzero"`
	// Queue is its job consumer's state; nil for a revoked builder, or
	// when the transport could not say (QueueError says why).
	Queue      *lantern.BuilderQueue `json:"queue,omitempty"`
	QueueError string                `json:"queueError,omitempty"`
	// Window is how many of its latest attestations the counts are over
	// (at most StatusAttestations): Done rebuilds and Failed ones. Of the
	// Done, Decided are those whose verdict is reproduced or a mismatch,
	// and Agreed those in the group of a reproduced verdict; Agreement is
	// Agreed / Decided, absent while nothing is decided.
	Window    int      `json:"window"`
	Done      int      `json:"done"`
	Failed    int      `json:"failed"`
	Decided   int      `json:"decided"`
	Agreed    int      `json:"agreed"`
	Agreement *float64 `json:"agreement,omitempty"`
}

// JobsStatus counts the newest jobs (Window of them, at most StatusJobs;
// More says there are older ones, not counted): Pending are waiting on at
// least one builder of the farm, Dead were given up on by at least one.
type JobsStatus struct {
	Window  int  `json:"window"`
	More    bool `json:"more"`
	Pending int  `json:"pending"`
	Dead    int  `json:"dead"`
}

// SourceStatus is one of the newest sources with its verdicts.
type SourceStatus struct {
	Name     string        `json:"name"`
	Version  string        `json:"version"`
	Added    time.Time     `json:"added"`
	Verdicts []VerdictView `json:"verdicts"`
}

// Status is the farm at a glance: what GET /api/v1/status answers.
type Status struct {
	Threshold int             `json:"threshold"`
	Builders  []BuilderStatus `json:"builders"`
	Jobs      JobsStatus      `json:"jobs"`
	Sources   []SourceStatus  `json:"sources"`
	// Unreachable says that no verdict can be reproduced with the builders
	// the farm has.
	Unreachable *Unreachable `json:"unreachable,omitempty"`
}

// Status reads the farm at a glance. Its cost is bounded: each builder's
// latest StatusAttestations attestations (with the verdicts on them), the
// newest StatusJobs jobs and StatusSources sources, and one question per
// builder to the transport.
func (s *Scheduler) Status(ctx context.Context) (*Status, error) {
	bs, err := s.st.Builders(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Threshold: s.cfg.Threshold, Builders: []BuilderStatus{}, Sources: []SourceStatus{}}
	queues, _ := s.q.(BuilderQueues)
	verdicts := map[string][]lantern.Verdict{} // name@version → its verdicts, read once
	enrolled := map[lantern.Digest]bool{}
	for _, b := range bs {
		bst := BuilderStatus{ID: b.ID, Name: b.Name, Added: b.Added, Revoked: b.Revoked}
		if b.Revoked.IsZero() {
			enrolled[b.ID] = true
			switch {
			case queues == nil:
				bst.QueueError = "this scheduler's transport does not report queues"
			default:
				q, err := queues.BuilderQueue(ctx, b.ID)
				if err != nil {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					bst.QueueError = err.Error()
					break
				}
				bst.Queue, bst.Online = &q, q.Online()
				bst.LastSeen = latest(q.LastDelivered, q.LastAnswered)
			}
		}
		if err := s.countOutcomes(ctx, &bst, verdicts); err != nil {
			return nil, err
		}
		bst.LastSeen = latest(bst.LastSeen, bst.LastAttestation)
		st.Builders = append(st.Builders, bst)
	}
	if st.Jobs, err = s.jobsStatus(ctx, enrolled); err != nil {
		return nil, err
	}
	srcs, _, err := s.st.Sources(ctx, Page{Count: StatusSources})
	if err != nil {
		return nil, err
	}
	for _, src := range srcs {
		st.Sources = append(st.Sources, SourceStatus{Name: src.Name, Version: src.Version, Added: src.Added, Verdicts: s.viewVerdicts(src.Verdicts)})
	}
	st.Unreachable = Reach(s.cfg.Threshold, len(enrolled))
	return st, nil
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// countOutcomes counts b's latest attestations by kind and how its
// rebuilds fared in their verdicts.
func (s *Scheduler) countOutcomes(ctx context.Context, b *BuilderStatus, cache map[string][]lantern.Verdict) error {
	atts, _, err := s.st.AttestationsByBuilder(ctx, b.ID, Page{Count: StatusAttestations})
	if err != nil {
		return err
	}
	b.Window = len(atts)
	for _, a := range atts {
		b.LastAttestation = latest(b.LastAttestation, a.Received)
		if a.Kind == lantern.KindRebuildFailure {
			b.Failed++
			continue
		}
		b.Done++
		key := a.Source.Name + "@" + a.Source.Version
		vs, ok := cache[key]
		if !ok {
			if vs, err = s.st.Verdicts(ctx, a.Source.Name, a.Source.Version); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			cache[key] = vs
		}
		// A job's label may have a verdict per published artefact: the
		// rebuild agreed if it is in the group of a reproduced one.
		decided, agreed := false, false
		for _, v := range vs {
			if v.Job != a.JobID || v.Label != a.Label {
				continue
			}
			switch v.Status {
			case lantern.StatusReproduced:
				decided = true
				agreed = agreed || slices.ContainsFunc(v.Groups, func(g lantern.Group) bool {
					return g.Output == a.Output && slices.Contains(g.Builders, b.ID) && len(g.Builders) >= v.Threshold
				})
			case lantern.StatusMismatch, lantern.StatusConflict:
				decided = true
			}
		}
		if decided {
			b.Decided++
		}
		if agreed {
			b.Agreed++
		}
	}
	if b.Decided > 0 {
		r := float64(b.Agreed) / float64(b.Decided)
		b.Agreement = &r
	}
	return nil
}

// jobsStatus counts the newest jobs waiting on one of the enrolled
// builders, and those some builder's consumer gave up on.
func (s *Scheduler) jobsStatus(ctx context.Context, enrolled map[lantern.Digest]bool) (JobsStatus, error) {
	jobs, next, err := s.st.Jobs(ctx, "", Page{Count: StatusJobs})
	if err != nil {
		return JobsStatus{}, err
	}
	js := JobsStatus{Window: len(jobs), More: next != ""}
	for _, j := range jobs {
		pending, dead := false, false
		for b := range enrolled {
			st, ok := j.Builders[b]
			if !ok || st.State == JobQueued {
				pending = true
			}
		}
		for _, st := range j.Builders {
			if st.State == JobDead {
				dead = true
			}
		}
		if pending {
			js.Pending++
		}
		if dead {
			js.Dead++
		}
	}
	return js, nil
}

// statusFresh is how long GET /api/v1/status answers with the status it
// read last: reading one costs hundreds of records, and anyone may ask.
const statusFresh = time.Second

// statusCache is the status GET /api/v1/status read last. Its mutex also
// makes the requests read one at a time: those that waited get the status
// the first one read.
type statusCache struct {
	mu sync.Mutex
	at time.Time
	st *Status
}

func (s *Scheduler) getStatus(w http.ResponseWriter, r *http.Request) error {
	c := &s.status
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.cfg.Now()
	if c.st == nil || now.Sub(c.at) >= statusFresh || now.Before(c.at) {
		st, err := s.Status(r.Context())
		if err != nil {
			return err
		}
		c.st, c.at = st, now
	}
	writeJSON(w, http.StatusOK, c.st)
	return nil
}
