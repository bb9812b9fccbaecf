package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/gobinary"
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
	claim            lantern.Digest   // its envelope's digest
	gob              *lantern.GoBuild // its Go release, platforms and tags, if any
	// labels are the labels the job's build makes, each of which must have
	// a verdict before the job's is known; nil: those the farm names.
	labels []string
	// published are the artefacts the claim publishes, by label, and files
	// the files they were read from (--published).
	published map[string]lantern.Digest
	files     map[string]string
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
// verdicts of its own) that compare the rebuilds with what this claim
// publishes under their label (the same job has a verdict per published
// artefact, and one for claims that publish none), the labels of the job
// the farm awaits, and the conflict, which is about the name. A label of
// the job that has no verdict yet is pending: a farm that has decided one
// platform's label, or that leaves one out, has not reproduced the job.
func (r rebuildRun) mine(sv *sourceVerdicts) *sourceVerdicts {
	if sv == nil {
		return nil
	}
	out := &sourceVerdicts{Conflict: sv.Conflict, Unreachable: sv.Unreachable, Claims: sv.Claims}
	for _, v := range sv.Verdicts {
		if v.Job == r.job && v.Published == r.published[v.Label] {
			out.Verdicts = append(out.Verdicts, v)
		}
	}
	for _, a := range sv.Awaiting {
		if a.Job == r.job {
			out.Awaiting = append(out.Awaiting, a)
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

// wait follows the claim to its verdict (follow) and reports.
func (r rebuildRun) wait(ctx context.Context, io *stdio, d time.Duration, asJSON bool) error {
	sv, waitErr, err := r.follow(ctx, io, time.Now().Add(d), d)
	if err != nil {
		return err
	}
	return r.report(io, sv, asJSON, waitErr)
}

// waitAll follows each of runs, the claims of one rebuild, to its verdict
// within d, and reports them all: nil when every one is reproduced (or,
// without a wait, posted), a *contradictedError when any is contradicted,
// another error when any is not reproduced.
func waitAll(ctx context.Context, io *stdio, runs []rebuildRun, d time.Duration, asJSON bool) error {
	results := make([]runResult, len(runs))
	deadline := time.Now().Add(d)
	for i, r := range runs {
		if d == 0 {
			results[i] = r.result(nil, errNotWaited)
			continue
		}
		sv, waitErr, err := r.follow(ctx, io, deadline, d)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			sv, waitErr = nil, err
		}
		results[i] = r.result(sv, waitErr)
	}
	return reportAll(io, runs, results, asJSON)
}

// follow polls the farm until the verdict on the job settles, every
// builder answered without enough agreeing, or the deadline (d after the
// start) passes, showing progress on io.err. It returns the verdicts and
// why it stopped before they settled (nil when they did); err is ctx's, or
// the farm's when it never answered.
func (r rebuildRun) follow(ctx context.Context, io *stdio, deadline time.Time, d time.Duration) (_ *sourceVerdicts, waitErr, err error) {
	verdictURL, err := apiURL(r.api, "/api/v1/sources/"+r.source)
	if err != nil {
		return nil, nil, err
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
			return nil, nil, ctx.Err()
		}
		now := time.Now()
		p.show(j, names, now)
		if verr == nil && settled(mine, 0) {
			p.end()
			return mine, nil, nil
		}
		if u := mine.unreachable(); verr == nil && u != "" {
			// The farm has fewer builders than its threshold: waiting
			// cannot help.
			p.end()
			return mine, errors.New("the farm " + u), nil
		}
		// A claim that joins a job its builders are done with waits for
		// the farm to store it and compare with what it publishes: until
		// then, every builder's answer says nothing of it.
		stored := r.claim.IsZero() || sv.stored(r.claim)
		if jerr == nil && verr == nil && j != nil && len(j.Builders) > 0 && allFinal(j) && stored {
			answered++
			if answered >= answeredPolls {
				p.end()
				return mine, tooFewError(j, mine), nil
			}
		} else {
			answered = 0
		}
		if now.After(deadline) {
			p.end()
			if err := errors.Join(jerr, verr); err != nil && mine == nil {
				return nil, nil, fmt.Errorf("%s: no verdict within %s: the farm at %s: %w", r.source, d, r.api, err)
			}
			return mine, fmt.Errorf("no verdict within %s", d), nil
		}
		select {
		case <-ctx.Done():
			p.end()
			return nil, nil, ctx.Err()
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
	// Go is the claim's Go release, platforms and build tags, where it
	// names them.
	Go *lantern.GoBuild `json:"go,omitempty"`
	// Published are the artefacts the claim publishes, and Files the
	// files they were read from, by label (--published).
	Published map[string]lantern.Digest `json:"published,omitempty"`
	Files     map[string]string         `json:"files,omitempty"`
	// Dashboard is the dashboard's page of the source.
	Dashboard string `json:"dashboard"`
	// Status is reproduced, contradicted (a mismatch or a conflict),
	// failed, pending (not reproduced when rebuild stopped waiting), or
	// posted (without --wait).
	Status   string            `json:"status"`
	Error    string            `json:"error,omitempty"`
	Verdicts []lantern.Verdict `json:"verdicts"`
}

// runResult is what a run came to: its result, the verdicts it is made
// of, and the error its exit is made of.
type runResult struct {
	res rebuildResult
	sv  *sourceVerdicts
	err error
}

// result makes the run's result of the verdicts sv (what there is of
// them): its error is nil when every verdict is reproduced (or, for
// errNotWaited, once posted), a *contradictedError on a mismatch or a
// conflict, waitErr or what is not reproduced otherwise.
func (r rebuildRun) result(sv *sourceVerdicts, waitErr error) runResult {
	if sv == nil {
		sv = &sourceVerdicts{}
	}
	res := rebuildResult{Source: r.source, Job: r.job, Claim: r.claim, Farm: r.api, Go: r.gob,
		Published: r.published, Files: r.files, Dashboard: r.dashboard(), Verdicts: sv.Verdicts}
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
	if err != nil && len(r.files) > 0 {
		// Which files the claim published, for a CI log.
		var fs []string
		for _, l := range slices.Sorted(maps.Keys(r.files)) {
			fs = append(fs, l+" "+gobinary.Show(r.files[l]))
		}
		err = wrapMsg(err, " (published: "+strings.Join(fs, ", ")+")")
	}
	if err != nil {
		res.Error = err.Error()
	}
	return runResult{res, sv, err}
}

// wrapMsg returns err with suffix added to its message, of the same kind
// (a *contradictedError stays one).
func wrapMsg(err error, suffix string) error {
	if ce, ok := errors.AsType[*contradictedError](err); ok {
		return &contradictedError{ce.msg + suffix}
	}
	return fmt.Errorf("%w%s", err, suffix)
}

// report prints the verdicts (what there is of them) and the dashboard's
// address, and returns the exit's error, as result makes it.
func (r rebuildRun) report(io *stdio, sv *sourceVerdicts, asJSON bool, waitErr error) error {
	rr := r.result(sv, waitErr)
	if asJSON {
		if err := printJSON(io, rr.res); err != nil {
			return err
		}
		return rr.err
	}
	if err := rr.write(io); err != nil {
		return err
	}
	return rr.err
}

// write prints rr as text.
func (rr runResult) write(io *stdio) error {
	res := rr.res
	if res.Status == "posted" {
		_, err := fmt.Fprintf(io.out, "%s: claimed; job %s\n  wait for it  lantern verdict --wait 30m --api %s %s\n  dashboard    %s\n", res.Source, res.Job, res.Farm, res.Source, res.Dashboard)
		return err
	}
	if len(rr.sv.Verdicts) > 0 || len(rr.sv.Conflict) > 1 {
		if err := writeVerdicts(io, res.Source, rr.sv); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(io.out, "dashboard: %s\n", res.Dashboard)
	return err
}

func printJSON(io *stdio, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(io.out, "%s\n", b)
	return err
}

// rebuildResults are the results of a rebuild of several claims
// (--published), as --json prints them.
type rebuildResults struct {
	// Status is the worst of the claims' statuses: contradicted, failed,
	// pending, posted, reproduced.
	Status string          `json:"status"`
	Claims []rebuildResult `json:"claims"`
}

// reportAll prints the results of runs and returns the exit's error: a
// *contradictedError if any run is contradicted, another error if any is
// not reproduced, nil when every one is (or, without a wait, posted).
func reportAll(io *stdio, runs []rebuildRun, results []runResult, asJSON bool) error {
	out := rebuildResults{Status: string(lantern.StatusReproduced), Claims: []rebuildResult{}}
	rank := []string{string(lantern.StatusReproduced), "posted", "pending", string(lantern.StatusFailed), "contradicted"}
	var msgs []string
	contradicted := false
	for i, rr := range results {
		out.Claims = append(out.Claims, rr.res)
		if slices.Index(rank, rr.res.Status) > slices.Index(rank, out.Status) {
			out.Status = rr.res.Status
		}
		if rr.err != nil {
			msgs = append(msgs, rr.err.Error())
			_, ce := errors.AsType[*contradictedError](rr.err)
			contradicted = contradicted || ce
		}
		if asJSON {
			continue
		}
		if len(runs) > 1 || runs[i].gob != nil {
			fmt.Fprintf(io.out, "%s, %s:\n", rr.res.Source, runs[i].gob)
		}
		if err := rr.write(io); err != nil {
			return err
		}
	}
	if asJSON {
		if err := printJSON(io, out); err != nil {
			return err
		}
	}
	switch {
	case contradicted:
		return &contradictedError{strings.Join(msgs, "\n")}
	case len(msgs) > 0:
		return errors.New(strings.Join(msgs, "\n"))
	}
	return nil
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
