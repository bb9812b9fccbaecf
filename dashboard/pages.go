package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest/dsse"
	"github.com/lanternfarm/lantern/scheduler"
)

// The pages: each handler reads the store and returns its template's name
// and data.

// counts are verdicts counted by status.
type counts struct {
	Reproduced, Mismatch, Pending, Failed int
}

func (c *counts) add(s lantern.Status) {
	switch s {
	case lantern.StatusReproduced:
		c.Reproduced++
	case lantern.StatusMismatch:
		c.Mismatch++
	case lantern.StatusPending:
		c.Pending++
	case lantern.StatusFailed:
		c.Failed++
	}
}

// labelBadge is one label's verdict in a list.
type labelBadge struct {
	Label   string
	Status  lantern.Status
	Summary string
}

// sourceRow is one source in the list of the home page.
type sourceRow struct {
	Name, Version string
	Digests       []lantern.Digest
	Added         time.Time
	Status        lantern.Status
	Labels        []labelBadge
}

type homePage struct {
	Query   string
	Sources []sourceRow
	Counts  counts
	Next    string
	// Artefact is set when the query is a digest that some builder's output
	// or some published artefact is: its page answers "who built this".
	Artefact lantern.Digest
}

func (p *homePage) live() bool { return p.Counts.Pending > 0 }

func (p *homePage) title() string {
	if p.Query != "" {
		return "Search: " + p.Query
	}
	return ""
}

func (h *handler) home(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx := r.Context()
	p := &homePage{Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	var recs []scheduler.SourceRecord
	var err error
	if p.Query != "" {
		q := scheduler.ParseSourceQuery(p.Query)
		recs, p.Next, err = h.cfg.Store.SearchSources(ctx, q, pageParam(r, pageSources))
		if err != nil {
			return "", nil, err
		}
		if len(q.DigestHex) == 64 {
			d, _ := lantern.DigestFromHex(q.DigestHex)
			vs, err := h.cfg.Store.VerdictsOfArtefact(ctx, d)
			if err != nil {
				return "", nil, err
			}
			if len(vs) > 0 {
				p.Artefact = d
			}
		}
	} else {
		recs, p.Next, err = h.cfg.Store.Sources(ctx, pageParam(r, pageSources))
		if err != nil {
			return "", nil, err
		}
	}
	p.Next = nextURL(r, p.Next)
	for _, rec := range recs {
		row := sourceRow{Name: rec.Name, Version: rec.Version, Digests: rec.Digests, Added: rec.Added, Status: overall(rec.Verdicts)}
		for _, v := range rec.Verdicts {
			row.Labels = append(row.Labels, labelBadge{Label: v.Label, Status: v.Status, Summary: summary(v)})
			p.Counts.add(v.Status)
		}
		if len(rec.Verdicts) == 0 {
			p.Counts.add(lantern.StatusPending)
		}
		p.Sources = append(p.Sources, row)
	}
	return "home", p, nil
}

// outcomeRow is one builder's answer for one (source, label).
type outcomeRow struct {
	Builder       lantern.Digest
	BuilderName   string
	Output        lantern.Digest
	Stage, Reason string
	Took          time.Duration
	Finished      time.Time
	Attestation   lantern.Digest
	Log           lantern.Digest
}

// groupView is the builders that got one output.
type groupView struct {
	Output    lantern.Digest
	Published bool
	Agrees    bool
	Role      string
	Rows      []outcomeRow
	// Diff is the difference report on this group's output against the
	// first group's, where one was asked for.
	Diff *scheduler.DiffRecord
}

// labelView is the verdict on one label of a source, with its evidence.
type labelView struct {
	Label string
	// Source is the source archive the verdict is about; shown when claims
	// name more than one.
	Source     lantern.Digest
	ShowSource bool
	Status     lantern.Status
	Summary    string
	Published  lantern.Digest
	Groups     []groupView
	Failures   []outcomeRow
	// Revoked are the outcomes of builders removed from the farm: shown,
	// not counted.
	Revoked []outcomeRow
	// Recipe and Build say what was built (Build: the spec's digest, for
	// the generic recipe); ClaimedBy the claims compared, with signers.
	Recipe    string
	Build     lantern.Digest
	ClaimedBy []lantern.ClaimRef
	// NoResults: the label is published, no builder has answered yet.
	NoResults bool
	// Unreachable, for a pending verdict, says that the farm has too few
	// builders to reach its threshold.
	Unreachable *scheduler.Unreachable
}

// claimView is one source claim.
type claimView struct {
	Envelope  lantern.Digest
	Signer    lantern.Digest
	Received  time.Time
	Source    lantern.Digest
	Recipe    string
	Fetch     string
	Artefacts []artefactLabel
}

type artefactLabel struct {
	Label  string
	Digest lantern.Digest
}

// waitingRow is a builder that has not answered a job yet, or gave up.
type waitingRow struct {
	Job         string
	Builder     lantern.Digest
	BuilderName string
	State       scheduler.JobState
	Reason      string
	Since       time.Time
}

type sourcePage struct {
	Name, Version string
	Status        lantern.Status
	Claims        []claimView
	Labels        []labelView
	Waiting       []waitingRow
	// Disagree: claims name more than one source archive (a conflict);
	// Conflict lists them with the signers that claim each.
	Disagree bool
	Conflict []scheduler.SourceClaims
	// Markdown shows the badge and links here, for a README.
	Markdown string
	// Unreachable says, while no builder has answered, that the farm has
	// too few builders to reach its threshold.
	Unreachable *scheduler.Unreachable
	running     bool
}

func (p *sourcePage) live() bool { return p.running || p.Status == lantern.StatusPending }

func (p *sourcePage) title() string { return p.Name + "@" + p.Version }

// builderNames maps the farm's builders to their names ("" for none); a
// revoked builder's name says so, wherever its attestations are shown.
func (h *handler) builderNames(ctx context.Context) (map[lantern.Digest]string, []scheduler.BuilderRecord, error) {
	bs, err := h.cfg.Store.Builders(ctx)
	if err != nil {
		return nil, nil, err
	}
	names := make(map[lantern.Digest]string, len(bs))
	for _, b := range bs {
		names[b.ID] = b.Name
		if !b.Revoked.IsZero() {
			names[b.ID] = strings.TrimSpace(b.Name + " (revoked)")
		}
	}
	return names, bs, nil
}

func took(a scheduler.AttestationRecord) time.Duration {
	if a.Started.IsZero() || a.Finished.Before(a.Started) {
		return 0
	}
	return a.Finished.Sub(a.Started)
}

func (h *handler) source(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx := r.Context()
	name, version, err := sourceParam(r, "")
	if err != nil {
		return "", nil, err
	}
	claims, err := h.cfg.Store.ClaimsOf(ctx, name, version)
	if err != nil {
		return "", nil, err
	}
	verdicts, err := h.cfg.Store.Verdicts(ctx, name, version)
	if err != nil {
		return "", nil, err
	}
	atts, _, err := h.cfg.Store.AttestationsBySource(ctx, name, version, scheduler.Page{Count: maxSourceAttestations})
	if err != nil {
		return "", nil, err
	}
	if len(claims) == 0 && len(atts) == 0 {
		return "", nil, notFound("No claim of %s@%s has reached this farm.", name, version)
	}
	names, builders, err := h.builderNames(ctx)
	if err != nil {
		return "", nil, err
	}
	p := &sourcePage{Name: name, Version: version, Status: overall(verdicts)}
	base := origin(r)
	p.Markdown = "[![Lantern](" + base + badgeURL(name, version) + ")](" + base + sourceURL(name, version) + ")"

	sources := map[lantern.Digest]bool{}
	published := map[lantern.Digest]map[string]lantern.Digest{} // source → label → artefact
	var jobIDs []string
	for _, c := range claims {
		cv := claimView{Envelope: c.Envelope, Signer: c.Signer, Received: c.Received, Source: c.Claim.Source.Digest, Recipe: c.Claim.Recipe, Fetch: c.Claim.Fetch}
		for _, label := range sortedKeys(c.Claim.Artefacts) {
			cv.Artefacts = append(cv.Artefacts, artefactLabel{label, c.Claim.Artefacts[label]})
			if published[cv.Source] == nil {
				published[cv.Source] = map[string]lantern.Digest{}
			}
			published[cv.Source][label] = c.Claim.Artefacts[label]
		}
		p.Claims = append(p.Claims, cv)
		sources[cv.Source] = true
		for _, id := range c.Jobs {
			if !slices.Contains(jobIDs, id) {
				jobIDs = append(jobIDs, id)
			}
		}
	}
	for _, v := range verdicts {
		sources[v.Source.Digest] = true
	}
	p.Disagree = len(sources) > 1
	if c := scheduler.Conflicts(claims); len(c) > 1 {
		p.Conflict, p.Status = c, lantern.StatusConflict
	}

	// Each builder's latest attestation per (source, label), as Decide
	// counts them.
	// Each builder's latest attestation per (job, label), as the farm
	// received them (oldest first), as Decide counts them.
	type key struct {
		job     string
		label   string
		builder lantern.Digest
	}
	latest := map[key]scheduler.AttestationRecord{}
	for _, a := range atts {
		latest[key{a.JobID, a.Label, a.Builder}] = a
	}
	row := func(v lantern.Verdict, b lantern.Digest) outcomeRow {
		o := outcomeRow{Builder: b, BuilderName: names[b]}
		if a, ok := latest[key{v.Job, v.Label, b}]; ok {
			o.Output, o.Stage, o.Reason = a.Output, a.Stage, a.Reason
			o.Took, o.Finished, o.Attestation, o.Log = took(a), a.Finished, a.Envelope, a.Log
		}
		return o
	}
	enrolled := 0
	for _, b := range builders {
		if b.Revoked.IsZero() {
			enrolled++
		}
	}
	seen := map[string]bool{}
	for _, v := range verdicts {
		lv := labelView{Label: v.Label, Source: v.Source.Digest, ShowSource: p.Disagree, Status: v.Status, Summary: summary(v), Published: v.Published,
			Recipe: v.Recipe, Build: v.Build, ClaimedBy: v.Claims, Unreachable: scheduler.VerdictReach(v, enrolled)}
		for i, g := range v.Groups {
			gv := groupView{Output: g.Output, Published: g.Published, Agrees: i == reference(v), Role: role(v, i)}
			for _, b := range g.Builders {
				gv.Rows = append(gv.Rows, row(v, b))
			}
			if i > 0 {
				d, err := h.cfg.Store.Diff(ctx, v.Groups[0].Output, g.Output)
				switch {
				case err == nil:
					gv.Diff = d // a pending one keeps its own page live, not this one
				case !errors.Is(err, scheduler.ErrNotFound):
					return "", nil, err
				}
			}
			lv.Groups = append(lv.Groups, gv)
		}
		for _, f := range v.Failures {
			o := row(v, f.Builder)
			o.Stage, o.Reason, o.Attestation, o.Finished = f.Stage, f.Reason, f.Attestation, f.Finished
			lv.Failures = append(lv.Failures, o)
		}
		for _, r := range v.Revoked {
			o := row(v, r.Builder)
			o.Output, o.Stage, o.Reason, o.Attestation, o.Finished = r.Output, r.Stage, r.Reason, r.Attestation, r.Finished
			lv.Revoked = append(lv.Revoked, o)
		}
		p.Labels = append(p.Labels, lv)
		seen[v.Source.Digest.String()+"\x00"+v.Label] = true
	}
	// Published labels no builder has answered yet.
	for _, src := range sortedDigests(published) {
		for _, label := range sortedKeys(published[src]) {
			if seen[src.String()+"\x00"+label] {
				continue
			}
			lv := labelView{
				Label: label, Source: src, ShowSource: p.Disagree, Status: lantern.StatusPending,
				Summary: pendingSummary(h.cfg.Threshold), Published: published[src][label], NoResults: true,
			}
			if h.cfg.Threshold > 0 {
				lv.Unreachable = scheduler.Reach(h.cfg.Threshold, enrolled)
			}
			p.Labels = append(p.Labels, lv)
		}
	}
	if len(p.Labels) == 0 && p.Conflict == nil && h.cfg.Threshold > 0 {
		p.Unreachable = scheduler.Reach(h.cfg.Threshold, enrolled)
	}

	// Builders still at work, or that gave up.
	for _, id := range jobIDs {
		j, err := h.cfg.Store.Job(ctx, id)
		if errors.Is(err, scheduler.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		for _, b := range builders {
			st, ok := j.Builders[b.ID]
			if !ok {
				st = scheduler.BuilderJob{State: scheduler.JobQueued, Updated: j.Job.Created}
			}
			switch st.State {
			case scheduler.JobQueued:
				p.running = true
				if h.cfg.Building != nil {
					if since, ok := h.cfg.Building(b.ID, id); ok {
						st = scheduler.BuilderJob{State: scheduler.JobBuilding, Updated: since}
					}
				}
			case scheduler.JobDead:
			default:
				continue
			}
			p.Waiting = append(p.Waiting, waitingRow{Job: id, Builder: b.ID, BuilderName: b.Name, State: st.State, Reason: st.Reason, Since: st.Updated})
		}
	}
	return "source", p, nil
}

// origin is the scheme and host the request came to, for links that leave
// the dashboard (a badge in a README). Behind a proxy that terminates TLS,
// X-Forwarded-Proto says https.
func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func pendingSummary(threshold int) string {
	if threshold < 1 {
		return "pending"
	}
	return "pending 0/" + itoa(threshold)
}

// artefactVerdict is a verdict an artefact is part of, and its part in it.
type artefactVerdict struct {
	Name, Version string
	Source        lantern.Digest
	Label         string
	Status        lantern.Status
	Summary       string
	// Part is what the artefact is in the verdict: its group's role, or
	// "published, built by no builder".
	Part     string
	Builders []lantern.Digest
}

// attRow is an attestation in a list.
type attRow struct {
	scheduler.AttestationRecord
	BuilderName string
	Took        time.Duration
	// Outcome is how its output compares with the other builders'.
	Outcome builderOutcome
}

type artefactPage struct {
	Digest   lantern.Digest
	Verdicts []artefactVerdict
	Rows     []attRow
	Next     string
	pending  bool
}

func (p *artefactPage) live() bool { return p.pending }

func (p *artefactPage) title() string { return "Artefact " + p.Digest.Short() }

func (h *handler) artefact(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx := r.Context()
	d, err := digestParam(r, "digest", "an artefact")
	if err != nil {
		return "", nil, err
	}
	verdicts, err := h.cfg.Store.VerdictsOfArtefact(ctx, d)
	if err != nil {
		return "", nil, err
	}
	atts, next, err := h.cfg.Store.AttestationsByArtefact(ctx, d, lantern.Digest{}, pageParam(r, pageAttestations))
	if err != nil {
		return "", nil, err
	}
	if len(verdicts) == 0 && len(atts) == 0 {
		return "", nil, notFound("No builder of this farm has rebuilt %s, and no claim names it as published.", d)
	}
	names, _, err := h.builderNames(ctx)
	if err != nil {
		return "", nil, err
	}
	p := &artefactPage{Digest: d, Next: nextURL(r, next)}
	byKey := map[string]lantern.Verdict{}
	for _, v := range verdicts {
		av := artefactVerdict{Name: v.Source.Name, Version: v.Source.Version, Source: v.Source.Digest, Label: v.Label, Status: v.Status, Summary: summary(v), Part: "published; no builder got it"}
		for i, g := range v.Groups {
			if g.Output == d {
				av.Part, av.Builders = role(v, i), g.Builders
			}
		}
		p.Verdicts = append(p.Verdicts, av)
		p.pending = p.pending || v.Status == lantern.StatusPending
		byKey[verdictKey(v.Job, v.Label)] = v
	}
	for _, a := range atts {
		row := attRow{AttestationRecord: a, BuilderName: names[a.Builder], Took: took(a)}
		if v, ok := byKey[verdictKey(a.JobID, a.Label)]; ok {
			row.Outcome = outcomeOf(v, a.Builder)
		}
		p.Rows = append(p.Rows, row)
	}
	return "artefact", p, nil
}

// verdictKey names what a verdict is on: a job's label. (A job's label
// may have a verdict per published artefact; their groups are the same.)
func verdictKey(job, label string) string { return job + "\x00" + label }

// builderView is a builder with how its rebuilds compared.
type builderView struct {
	scheduler.BuilderRecord
	Agreement agreement
}

type buildersPage struct {
	Builders []builderView
}

func (p *buildersPage) title() string { return "Builders" }

func (h *handler) builders(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx := r.Context()
	bs, err := h.cfg.Store.Builders(ctx)
	if err != nil {
		return "", nil, err
	}
	p := &buildersPage{}
	for _, b := range bs {
		recent, _, err := h.cfg.Store.AttestationsByBuilder(ctx, b.ID, scheduler.Page{Count: agreementWindow})
		if err != nil {
			return "", nil, err
		}
		ag, _, err := h.agreement(ctx, b.ID, recent)
		if err != nil {
			return "", nil, err
		}
		p.Builders = append(p.Builders, builderView{BuilderRecord: b, Agreement: ag})
	}
	return "builders", p, nil
}

// agreement counts how builder's attestations atts compared with the other
// builders' outputs, by the current verdicts on them, and returns the
// outcome of each.
func (h *handler) agreement(ctx context.Context, builder lantern.Digest, atts []scheduler.AttestationRecord) (agreement, []builderOutcome, error) {
	cache := map[string][]lantern.Verdict{} // name@version → its verdicts
	ag := agreement{Window: len(atts)}
	outcomes := make([]builderOutcome, len(atts))
	for i, a := range atts {
		src := a.Source.Name + "\x00" + a.Source.Version
		vs, ok := cache[src]
		if !ok {
			var err error
			if vs, err = h.cfg.Store.Verdicts(ctx, a.Source.Name, a.Source.Version); err != nil {
				return ag, nil, err
			}
			cache[src] = vs
		}
		for _, v := range vs {
			if v.Label == a.Label && v.Job == a.JobID {
				outcomes[i] = outcomeOf(v, builder)
			}
		}
		if a.Kind == lantern.KindRebuildFailure {
			ag.Failed++
			outcomes[i] = outcomeFailed
			continue
		}
		ag.Rebuilt++
		switch outcomes[i] {
		case outcomeAgrees:
			ag.Compared++
			ag.Agreed++
		case outcomeDisagrees:
			ag.Compared++
		case outcomeAlone:
			ag.Alone++
		}
	}
	return ag, outcomes, nil
}

type builderPage struct {
	Builder   scheduler.BuilderRecord
	Known     bool
	Agreement agreement
	Rows      []attRow
	Next      string
}

func (p *builderPage) title() string {
	if p.Builder.Name != "" {
		return "Builder " + p.Builder.Name
	}
	return "Builder " + p.Builder.ID.Short()
}

func (h *handler) builder(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx := r.Context()
	id, err := digestParam(r, "id", "a builder's key")
	if err != nil {
		return "", nil, err
	}
	_, bs, err := h.builderNames(ctx)
	if err != nil {
		return "", nil, err
	}
	p := &builderPage{Builder: scheduler.BuilderRecord{ID: id}}
	for _, b := range bs {
		if b.ID == id {
			p.Builder, p.Known = b, true
		}
	}
	recent, _, err := h.cfg.Store.AttestationsByBuilder(ctx, id, scheduler.Page{Count: agreementWindow})
	if err != nil {
		return "", nil, err
	}
	if !p.Known && len(recent) == 0 {
		return "", nil, notFound("%s is not one of this farm's builders, and no attestation of it is here.", id)
	}
	p.Agreement, _, err = h.agreement(ctx, id, recent)
	if err != nil {
		return "", nil, err
	}
	page, next, err := h.cfg.Store.AttestationsByBuilder(ctx, id, pageParam(r, pageAttestations))
	if err != nil {
		return "", nil, err
	}
	_, outcomes, err := h.agreement(ctx, id, page)
	if err != nil {
		return "", nil, err
	}
	for i, a := range page {
		p.Rows = append(p.Rows, attRow{AttestationRecord: a, BuilderName: p.Builder.Name, Took: took(a), Outcome: outcomes[i]})
	}
	p.Next = nextURL(r, next)
	return "builder", p, nil
}

type attestationPage struct {
	A           scheduler.AttestationRecord
	BuilderName string
	Took        time.Duration
	// Statement is the in-toto statement the envelope signs, indented.
	Statement string
	// The build log: Log is shown when LogRead; LogError says why not.
	LogRead  bool
	Log      string
	LogCut   bool
	LogError string
}

func (p *attestationPage) title() string { return "Attestation " + p.A.Envelope.Short() }

func (h *handler) attestation(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx := r.Context()
	d, err := digestParam(r, "digest", "an attestation")
	if err != nil {
		return "", nil, err
	}
	a, err := h.cfg.Store.Attestation(ctx, d)
	if errors.Is(err, scheduler.ErrNotFound) {
		return "", nil, notFound("No attestation %s is stored here.", d)
	}
	if err != nil {
		return "", nil, err
	}
	names, _, err := h.builderNames(ctx)
	if err != nil {
		return "", nil, err
	}
	p := &attestationPage{A: *a, BuilderName: names[a.Builder], Took: took(*a)}
	if env, err := dsse.Unmarshal(a.Raw); err == nil {
		var buf bytes.Buffer
		if json.Indent(&buf, env.Payload, "", "  ") == nil {
			p.Statement = buf.String()
		}
	}
	switch {
	case a.Log.IsZero():
	case h.cfg.Objects == nil:
		p.LogError = "This dashboard does not read the farm's object store; download the log instead."
	default:
		b, cut, err := scheduler.ReadLog(ctx, h.cfg.Objects, a.Log, maxLogShown)
		if err != nil {
			h.log.Warn("build log unreadable", "attestation", d.Short(), "log", a.Log.Short(), "error", err)
			p.LogError = "The log could not be read from the farm's object store."
		} else {
			p.LogRead, p.Log, p.LogCut = true, strings.ToValidUTF8(string(b), "\uFFFD"), cut
		}
	}
	return "attestation", p, nil
}

// diffPage is diffoscope's report on two outputs.
type diffPage struct {
	D           scheduler.DiffRecord
	Report      string
	ReportRead  bool
	ReportCut   bool
	ReportError string
}

func (p *diffPage) title() string {
	return "How " + p.D.A.Short() + " and " + p.D.B.Short() + " differ"
}

func (p *diffPage) live() bool { return p.D.State == scheduler.DiffPending }

func (h *handler) diff(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx := r.Context()
	a, err := digestParam(r, "a", "an output")
	if err != nil {
		return "", nil, err
	}
	b, err := digestParam(r, "b", "an output")
	if err != nil {
		return "", nil, err
	}
	d, err := h.cfg.Store.Diff(ctx, a, b)
	if errors.Is(err, scheduler.ErrNotFound) {
		return "", nil, notFound("No report on how %s and %s differ is kept here.", a, b)
	}
	if err != nil {
		return "", nil, err
	}
	p := &diffPage{D: *d}
	switch {
	case d.State != scheduler.DiffDone:
	case h.cfg.Objects == nil:
		p.ReportError = "This dashboard does not read the farm's object store; download the report instead."
	default:
		b, cut, err := scheduler.ReadLog(ctx, h.cfg.Objects, d.Report, maxLogShown)
		if err != nil {
			h.log.Warn("difference report unreadable", "report", d.Report.Short(), "error", err)
			p.ReportError = "The report could not be read from the farm's object store."
		} else {
			p.ReportRead, p.Report, p.ReportCut = true, strings.ToValidUTF8(string(b), "\uFFFD"), cut
		}
	}
	return "diff", p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedDigests[V any](m map[lantern.Digest]V) []lantern.Digest {
	keys := make([]lantern.Digest, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b lantern.Digest) int { return strings.Compare(a.String(), b.String()) })
	return keys
}
