package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/lanternfarm/lantern"
)

// errNotWaited is rebuild's outcome without --wait: the claim was posted.
var errNotWaited = errors.New("not waited for")

// pollEvery is how often rebuild --wait asks the farm (a variable for
// tests).
var pollEvery = 2 * time.Second

// farmAnswerTime is how long past rebuild --wait's own time one poll may
// take (a variable for tests): a farm that holds a request open, or sends
// its answer a byte at a time, cannot keep rebuild waiting past it.
var farmAnswerTime = 30 * time.Second

// answeredPolls is how many polls in a row rebuild --wait sees every
// builder answered and a verdict still pending before it stops: the farm
// needs more builders to agree than it has.
const answeredPolls = 3

// rebuildRun is one claim that rebuild posted, followed to its verdict.
type rebuildRun struct {
	api, source, job string
	claim            lantern.Digest // its envelope's digest
	// labels are the labels the job's build makes, each of which must have
	// a verdict before the job's is known; nil: those the farm names.
	labels []string
}

// jobStatus is what the API says of a job: GET /api/v1/jobs/{id}.
type jobStatus struct {
	Created  time.Time                     `json:"created"`
	Builders map[lantern.Digest]builderJob `json:"builders"`
}

type builderJob struct {
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// final reports whether the builder is done with the job, one way or
// another: anything but queued (or building, where a farm says so).
func (b builderJob) final() bool {
	return b.State != "queued" && b.State != "building" && b.State != ""
}

func (r rebuildRun) dashboard() string {
	u, _ := apiURL(r.api, "/sources/"+r.source)
	return u
}

func (r rebuildRun) getJob(ctx context.Context) (*jobStatus, error) {
	u, err := apiURL(r.api, "/api/v1/jobs/"+url.PathEscape(r.job))
	if err != nil {
		return nil, err
	}
	resp, body, err := apiGet(ctx, u, 16<<20)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil // not stored yet
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("job %s: %s: %s", r.job, printable(resp.Status), apiError(body))
	}
	var j jobStatus
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, fmt.Errorf("job %s: the API answered %q: %w", r.job, truncateBytes(body), err)
	}
	return &j, nil
}

// builderNames returns the farm's builders' names by key id; an error
// leaves them to be shown by key.
func (r rebuildRun) builderNames(ctx context.Context) map[lantern.Digest]string {
	names := map[lantern.Digest]string{}
	u, err := apiURL(r.api, "/api/v1/builders")
	if err != nil {
		return names
	}
	resp, body, err := apiGet(ctx, u, 4<<20)
	if err != nil || resp.StatusCode != http.StatusOK {
		return names
	}
	var bs struct {
		Builders []struct {
			ID   lantern.Digest `json:"id"`
			Name string         `json:"name"`
		} `json:"builders"`
	}
	json.Unmarshal(body, &bs)
	for _, b := range bs.Builders {
		if b.Name != "" {
			names[b.ID] = b.Name
		}
	}
	return names
}

// mine keeps of sv the verdicts on the job rebuild posted (another
// claimer's job of the same source, or a verdict that names no job, has
// verdicts of its own), and the conflict, which is about the name. A label
// of the job that has no verdict yet is pending: a farm that has decided
// one platform's label, or that leaves one out, has not reproduced the
// job.
func (r rebuildRun) mine(sv *sourceVerdicts) *sourceVerdicts {
	if sv == nil {
		return nil
	}
	out := &sourceVerdicts{Conflict: sv.Conflict, Unreachable: sv.Unreachable}
	for _, v := range sv.Verdicts {
		if v.Job == r.job {
			out.Verdicts = append(out.Verdicts, v)
		}
	}
	if len(out.Verdicts) == 0 {
		return out // no verdict yet, as the farm says
	}
	for _, l := range r.labels {
		if !slices.ContainsFunc(out.Verdicts, func(v lantern.Verdict) bool { return v.Label == l }) {
			out.Verdicts = append(out.Verdicts, lantern.Verdict{Label: l, Job: r.job, Status: lantern.StatusPending})
		}
	}
	return out
}

// wait polls the farm until the verdict on the job settles, every builder
// answered without enough agreeing, or d runs out, showing progress on
// io.err; then it reports.
func (r rebuildRun) wait(ctx context.Context, io *stdio, d time.Duration, asJSON bool) error {
	start := time.Now()
	deadline := start.Add(d)
	verdictURL, err := apiURL(r.api, "/api/v1/sources/"+r.source)
	if err != nil {
		return err
	}
	// Each poll's requests end farmAnswerTime after the wait does (or
	// after they start, past it).
	pollCtx := func() (context.Context, context.CancelFunc) {
		return context.WithDeadline(ctx, latest(deadline, time.Now()).Add(farmAnswerTime))
	}
	pctx, cancel := pollCtx()
	names := r.builderNames(pctx)
	cancel()
	p := &jobProgress{w: io.err, tty: isTerminal(io.err), source: r.source, job: r.job, last: map[lantern.Digest]string{}}
	answered := 0
	for {
		pctx, cancel := pollCtx()
		j, jerr := r.getJob(pctx)
		sv, verr := getVerdicts(pctx, verdictURL)
		mine := r.mine(sv)
		if j != nil {
			for b := range j.Builders {
				if _, ok := names[b]; !ok {
					names = r.builderNames(pctx) // a builder that joined since
					break
				}
			}
		}
		cancel()
		if ctx.Err() != nil {
			p.end()
			return ctx.Err()
		}
		now := time.Now()
		p.show(j, names, now)
		if verr == nil && settled(mine, 0) {
			p.end()
			return r.report(io, mine, asJSON, nil)
		}
		if u := mine.unreachable(); verr == nil && u != "" {
			// The farm has fewer builders than its threshold: waiting
			// cannot help.
			p.end()
			return r.report(io, mine, asJSON, errors.New("the farm "+u))
		}
		if jerr == nil && verr == nil && j != nil && len(j.Builders) > 0 && allFinal(j) {
			answered++
			if answered >= answeredPolls {
				p.end()
				return r.report(io, mine, asJSON, tooFewError(j, mine))
			}
		} else {
			answered = 0
		}
		if now.After(deadline) {
			p.end()
			if err := errors.Join(jerr, verr); err != nil && mine == nil {
				return fmt.Errorf("%s: no verdict within %s: the farm at %s: %w", r.source, d, r.api, err)
			}
			return r.report(io, mine, asJSON, fmt.Errorf("no verdict within %s", d))
		}
		select {
		case <-ctx.Done():
			p.end()
			return ctx.Err()
		case <-time.After(min(pollEvery, max(time.Until(deadline), 0)+10*time.Millisecond)):
		}
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func allFinal(j *jobStatus) bool {
	for _, b := range j.Builders {
		if !b.final() {
			return false
		}
	}
	return true
}

// tooFewError says why a verdict is pending though every builder of the
// farm answered.
func tooFewError(j *jobStatus, sv *sourceVerdicts) error {
	threshold := 0
	if sv != nil {
		for _, v := range sv.Verdicts {
			threshold = max(threshold, v.Threshold)
		}
	}
	if threshold > 0 {
		return fmt.Errorf("every one of the farm's %d builders answered, and the verdict needs %d to agree: it cannot be reached with these builders (add builders, or lower the farm's --threshold)", len(j.Builders), threshold)
	}
	return fmt.Errorf("every one of the farm's %d builders answered, and there is no verdict", len(j.Builders))
}

// rebuildResult is rebuild's result as --json prints it.
type rebuildResult struct {
	Source string         `json:"source"`
	Job    string         `json:"job"`
	Claim  lantern.Digest `json:"claim"`
	Farm   string         `json:"farm"`
	// Dashboard is the dashboard's page of the source.
	Dashboard string `json:"dashboard"`
	// Status is reproduced, contradicted (a mismatch or a conflict),
	// failed, pending (not reproduced when rebuild stopped waiting), or
	// posted (without --wait).
	Status   string            `json:"status"`
	Error    string            `json:"error,omitempty"`
	Verdicts []lantern.Verdict `json:"verdicts"`
}

// report prints the verdicts (what there is of them) and the dashboard's
// address, and returns the exit's error: nil when every verdict is
// reproduced (or, for errNotWaited, once posted), a *contradictedError on a
// mismatch or a conflict, waitErr or what is not reproduced otherwise.
func (r rebuildRun) report(io *stdio, sv *sourceVerdicts, asJSON bool, waitErr error) error {
	if sv == nil {
		sv = &sourceVerdicts{}
	}
	res := rebuildResult{Source: r.source, Job: r.job, Claim: r.claim, Farm: r.api, Dashboard: r.dashboard(), Verdicts: sv.Verdicts}
	if res.Verdicts == nil {
		res.Verdicts = []lantern.Verdict{}
	}
	var err error
	var ce *contradictedError
	switch verr := verdictsErr(r.source, sv); {
	case waitErr == errNotWaited:
		res.Status = "posted"
	case errors.As(verr, &ce):
		res.Status, err = "contradicted", verr
	case verr == nil:
		res.Status = string(lantern.StatusReproduced)
	default:
		res.Status = "pending"
		for _, v := range sv.Verdicts {
			if v.Status == lantern.StatusFailed {
				res.Status = string(lantern.StatusFailed)
			}
		}
		err = verr
		if waitErr != nil && len(sv.Verdicts) > 0 {
			err = fmt.Errorf("%w (%v)", verr, waitErr)
		} else if waitErr != nil {
			err = fmt.Errorf("%s: not reproduced: %w", r.source, waitErr)
		}
	}
	if err != nil {
		res.Error = err.Error()
	}
	if asJSON {
		b, jerr := json.MarshalIndent(res, "", "  ")
		if jerr != nil {
			return jerr
		}
		if _, jerr := fmt.Fprintf(io.out, "%s\n", b); jerr != nil {
			return jerr
		}
		return err
	}
	if res.Status == "posted" {
		fmt.Fprintf(io.out, "%s: claimed; job %s\n  wait for it  lantern verdict --wait 30m --api %s %s\n  dashboard    %s\n", r.source, r.job, r.api, r.source, res.Dashboard)
		return nil
	}
	if len(sv.Verdicts) > 0 || len(sv.Conflict) > 1 {
		if werr := writeVerdicts(io, r.source, sv); werr != nil {
			return werr
		}
	}
	fmt.Fprintf(io.out, "dashboard: %s\n", res.Dashboard)
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// jobProgress shows each builder's state of a job: on a terminal, lines
// redrawn in place with the time each took (or is taking); otherwise a
// line whenever a builder's state changes.
type jobProgress struct {
	w           io.Writer
	tty         bool
	source, job string
	drawn       int                       // lines drawn last (tty)
	last        map[lantern.Digest]string // states printed (not tty)
	waiting     bool                      // "waiting for the scheduler" printed (not tty)
}

func (p *jobProgress) show(j *jobStatus, names map[lantern.Digest]string, now time.Time) {
	type row struct {
		name string
		b    builderJob
		id   lantern.Digest
	}
	var rows []row
	if j != nil {
		for id, b := range j.Builders {
			name := printable(names[id])
			if name == "" {
				name = id.Short()
			}
			// What a farm says is printed as it is only where it cannot
			// print a line of its own or move the cursor.
			b.State, b.Reason = printable(b.State), printable(b.Reason)
			rows = append(rows, row{name, b, id})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.name, b.name) })
	took := func(b builderJob) string {
		end := now
		if b.final() {
			end = b.Updated
		}
		return max(end.Sub(j.Created), 0).Round(time.Second).String()
	}
	if !p.tty {
		if len(rows) == 0 && !p.waiting {
			fmt.Fprintf(p.w, "%s %s: waiting for the farm to store job %s\n", now.Format("15:04:05"), p.source, p.job)
			p.waiting = true
		}
		for _, r := range rows {
			if p.last[r.id] == r.b.State {
				continue
			}
			p.last[r.id] = r.b.State
			line := fmt.Sprintf("%s %s: %s %s", now.Format("15:04:05"), p.source, r.name, r.b.State)
			if r.b.final() {
				line += " after " + took(r.b)
			}
			if r.b.Reason != "" {
				line += ": " + r.b.Reason
			}
			fmt.Fprintln(p.w, line)
		}
		return
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn) // back to the first line drawn
	}
	lines := []string{fmt.Sprintf("%s  job %s", p.source, p.job)}
	if len(rows) == 0 {
		lines = append(lines, "  waiting for the farm to store the job")
	}
	for _, r := range rows {
		l := fmt.Sprintf("  %-14s %-9s %s", r.name, r.b.State, took(r.b))
		if r.b.Reason != "" {
			l += "  " + r.b.Reason
		}
		lines = append(lines, l)
	}
	for _, l := range lines {
		fmt.Fprintf(&b, "\r\x1b[2K%s\n", l)
	}
	for range p.drawn - len(lines) { // fewer lines than before: clear the rest
		b.WriteString("\r\x1b[2K\n")
	}
	io.WriteString(p.w, b.String())
	p.drawn = max(len(lines), p.drawn)
}

// end leaves the last drawing as it is.
func (p *jobProgress) end() { p.drawn = 0 }
