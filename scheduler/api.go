package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/attest"
	"github.com/lanternfarm/lantern/attest/bundle"
	"github.com/lanternfarm/lantern/attest/dsse"
)

// The JSON API, under /api/v1, in the spirit of the BitLantern README:
//
//	POST /api/v1/claims                        a signed source claim (the DSSE envelope) → 202, its job
//	POST /api/v1/attestations                  a builder's signed attestation → 202
//	GET  /api/v1/attestations/{digest}         the signed envelope itself, as the builder sent it
//	GET  /api/v1/attestations/{digest}?format=bundle  the same in a Sigstore bundle v0.3 (cosign v3's --bundle)
//	GET  /api/v1/attestations/{digest}/log     the build log it names, as text
//	GET  /api/v1/artefacts/{digest}            verdicts on it; who built it, from what
//	GET  /api/v1/artefacts/{digest}/attestations?count=N&cursor=C&builder=K
//	GET  /api/v1/sources?q=Q&count=N&cursor=C  sources with their verdicts: newest first, or those Q finds
//	GET  /api/v1/sources/{name}@{version}      its claims, verdicts and attestations
//	GET  /api/v1/diffs/{a}/{b}                 the difference report on outputs a and b (either order): its state
//	GET  /api/v1/diffs/{a}/{b}/report          the report itself, diffoscope's text
//	GET  /api/v1/builders                      the farm's builders
//	GET  /api/v1/builders/{id}                 a builder and its recent attestations
//	GET  /api/v1/jobs?state=S&count=N&cursor=C jobs and their state per builder
//	GET  /api/v1/jobs/{id}
//	GET  /api/v1/deadletters?count=N&cursor=C   jobs a builder's consumer gave up on
//	GET  /api/v1/status                        the farm at a glance: builders, their queues, jobs, the newest verdicts
//	GET  /healthz, GET /metrics (Prometheus)
//
// Posted claims and attestations need no account: their signatures are
// checked. A pending verdict that the farm's builders are too few to
// reproduce says so in its "unreachable" field. Errors are JSON, {"error": what is wrong, "fix": what to do}.

// Handler returns the HTTP handler of the API, /healthz and /metrics.
func (s *Scheduler) Handler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern, route string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			if err := h(rw, r); err != nil {
				s.writeError(rw, err)
			}
			s.metrics.requests.WithLabelValues(route, strconv.Itoa(rw.code)).Inc()
		})
	}
	handle("POST /api/v1/claims", "claims", s.postClaim)
	handle("POST /api/v1/attestations", "attestations", s.postAttestation)
	handle("GET /api/v1/attestations/{digest}", "attestation", s.getAttestation)
	handle("GET /api/v1/attestations/{digest}/log", "attestation-log", s.getAttestationLog)
	handle("GET /api/v1/artefacts/{digest}", "artefact", s.getArtefact)
	handle("GET /api/v1/artefacts/{digest}/attestations", "artefact-attestations", s.getArtefactAttestations)
	handle("GET /api/v1/evidence", "evidence", s.getEvidence)
	handle("GET /api/v1/sources", "sources", s.getSources)
	handle("GET /api/v1/sources/{source...}", "source", s.getSource)
	handle("GET /api/v1/diffs/{a}/{b}", "diff", s.getDiff)
	handle("GET /api/v1/diffs/{a}/{b}/report", "diff-report", s.getDiffReport)
	handle("GET /api/v1/builders", "builders", s.getBuilders)
	handle("GET /api/v1/claim-keys", "claim-keys", s.getClaimKeys)
	handle("GET /api/v1/builders/{id}", "builder", s.getBuilder)
	handle("GET /api/v1/jobs", "jobs", s.getJobs)
	handle("GET /api/v1/jobs/{id}", "job", s.getJob)
	handle("GET /api/v1/deadletters", "deadletters", s.getDeadLetters)
	handle("GET /api/v1/status", "status", s.getStatus)
	handle("/api/", "unknown", func(w http.ResponseWriter, r *http.Request) error {
		return apiErr(http.StatusNotFound, fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path), "see the routes in the scheduler's package documentation, all under /api/v1")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// apiError is an error with its HTTP status and a hint of what to do.
type apiError struct {
	code int
	msg  string
	fix  string
}

func (e *apiError) Error() string { return e.msg }

func apiErr(code int, msg, fix string) error { return &apiError{code: code, msg: msg, fix: fix} }

func (s *Scheduler) writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = classify(err)
	}
	if rl := (*RateLimitError)(nil); errors.As(err, &rl) {
		w.Header().Set("Retry-After", strconv.Itoa(rl.retryAfterSeconds()))
	}
	if ae.code >= 500 {
		s.log.Error("api", "error", err)
	}
	writeJSON(w, ae.code, map[string]string{"error": ae.msg, "fix": ae.fix})
}

// classify maps an ingest error to a status code and a hint.
func classify(err error) *apiError {
	msg := err.Error()
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return &apiError{http.StatusRequestTimeout, "the request body came too slowly", "send the whole body at once"}
	case errors.Is(err, ErrRateLimited):
		return &apiError{http.StatusTooManyRequests, msg, "wait as long as Retry-After says; the farm's operator sets the rate (--claims-per-minute)"}
	case errors.As(err, &mbe):
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", mbe.Limit), "post one envelope, as lantern claim sign or attest sign writes it"}
	case errors.Is(err, ErrJobTooLarge):
		return &apiError{http.StatusRequestEntityTooLarge, msg, "make the claim smaller, or ask the farm's operator to raise --max-msg-size"}
	case errors.Is(err, dsse.ErrTooLarge):
		return &apiError{http.StatusRequestEntityTooLarge, msg, "post one envelope, as lantern claim sign or attest sign writes it"}
	case errors.Is(err, ErrDuplicate):
		return &apiError{http.StatusConflict, msg, "nothing to do: it is recorded already"}
	case errors.Is(err, ErrUnknownSigner):
		return &apiError{http.StatusForbidden, msg, "sign with a key the farm accepts claims from, or ask its operator to add yours (--claim-key)"}
	case errors.Is(err, ErrUnknownBuilder):
		return &apiError{http.StatusForbidden, msg, "only the farm's builders post attestations; ask its operator to add your key (lantern builder add)"}
	case errors.Is(err, ErrRevokedBuilder):
		return &apiError{http.StatusForbidden, msg, "this builder was removed from the farm (lantern builder remove); ask its operator"}
	case errors.Is(err, dsse.ErrSignature), errors.Is(err, attest.ErrBuilderMismatch):
		return &apiError{http.StatusForbidden, msg, "sign the attestation with the key of the builder it names"}
	case errors.Is(err, dsse.ErrNoSignature), errors.Is(err, dsse.ErrSignatureCount):
		return &apiError{http.StatusBadRequest, msg, "post an envelope with exactly one signature, as lantern claim sign writes it"}
	case errors.Is(err, dsse.ErrMalformed), errors.Is(err, dsse.ErrBase64), errors.Is(err, dsse.ErrPayloadType),
		errors.Is(err, attest.ErrMalformed), errors.Is(err, attest.ErrUnknownField), errors.Is(err, attest.ErrStatementType):
		return &apiError{http.StatusBadRequest, msg, "post the DSSE envelope JSON exactly as lantern claim sign or attest sign writes it"}
	case errors.Is(err, attest.ErrPredicateType), errors.Is(err, attest.ErrSubject), errors.Is(err, attest.ErrInvalidClaim),
		errors.Is(err, ErrNotASource), errors.Is(err, ErrUnknownRecipe), errors.Is(err, ErrUnknownJob),
		errors.Is(err, ErrWrongJob), errors.Is(err, ErrNotAResult):
		return &apiError{http.StatusUnprocessableEntity, msg, "the envelope is signed but its claim cannot be used here; see the error"}
	case errors.Is(err, ErrFetchRefused):
		return &apiError{http.StatusUnprocessableEntity, msg, "give a fetch URL this farm may fetch from: https on a public host (its operator widens that with --allow-http-fetch, --allow-private-fetch or --allow-fetch-from)"}
	case errors.Is(err, ErrBadCursor):
		return &apiError{http.StatusBadRequest, msg, "pass the cursor a previous page returned as next, or none for the first page"}
	case errors.Is(err, ErrNotFound):
		return &apiError{http.StatusNotFound, msg, "check the digest, name or id"}
	}
	return &apiError{http.StatusInternalServerError, "internal error", "try again; if it persists, see the scheduler's log"}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// Compact: pages of attestations are large, and indenting them costs a
	// good part of the time of a GET; clients pretty-print if they want.
	json.NewEncoder(w).Encode(v)
}

func (s *Scheduler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, apiErr(http.StatusBadRequest, "empty body", "post the DSSE envelope JSON as the body")
	}
	return b, nil
}

func (s *Scheduler) postClaim(w http.ResponseWriter, r *http.Request) error {
	raw, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	vc, err := s.verifyClaim(raw, time.Time{})
	if err != nil {
		return err
	}
	resp := map[string]any{"claim": vc.rec.Envelope, "job": vc.job.ID, "source": vc.rec.Claim.Source}
	if _, err := s.st.Claim(r.Context(), vc.rec.Envelope); err == nil {
		resp["duplicate"] = true
		writeJSON(w, http.StatusOK, resp)
		return nil
	}
	// Counted once its signature checked out, and only if new: nobody
	// spends a key's claims but its holder, not even by replaying them.
	if err := s.limitClaim(vc); err != nil {
		return err
	}
	if err := s.q.PublishClaim(r.Context(), raw); err != nil {
		return fmt.Errorf("publish claim: %w", err)
	}
	writeJSON(w, http.StatusAccepted, resp)
	return nil
}

func (s *Scheduler) postAttestation(w http.ResponseWriter, r *http.Request) error {
	raw, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	vr, err := s.verifyResult(r.Context(), lantern.Digest{}, raw, s.cfg.Now())
	if err != nil {
		return err
	}
	rec := vr.rec
	if _, err := s.st.Attestation(r.Context(), rec.Envelope); err == nil {
		return fmt.Errorf("attestation %s: envelope %w", rec.Envelope, ErrDuplicate)
	}
	outcomes, err := s.st.Outcomes(r.Context(), rec.JobID, rec.Label)
	if err != nil {
		return err
	}
	for _, o := range outcomes {
		if o.Builder == rec.Builder {
			return fmt.Errorf("builder %s %w an attestation for job %s, label %q", rec.Builder, ErrDuplicate, rec.JobID, rec.Label)
		}
	}
	if err := s.q.PublishResult(r.Context(), rec.Builder, raw); err != nil {
		return fmt.Errorf("publish attestation: %w", err)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"attestation": rec.Envelope, "job": rec.JobID, "builder": rec.Builder})
	return nil
}

// attestationView is an attestation as the API shows it: the record, how
// long the build took, and where to download the signed envelope.
type attestationView struct {
	AttestationRecord
	Seconds  float64 `json:"seconds,omitempty"`
	Download string  `json:"download"`
}

func viewAttestations(recs []AttestationRecord) []attestationView {
	out := make([]attestationView, 0, len(recs))
	for _, a := range recs {
		v := attestationView{AttestationRecord: a, Download: "/api/v1/attestations/" + a.Envelope.String()}
		if !a.Started.IsZero() {
			v.Seconds = a.Finished.Sub(a.Started).Seconds()
		}
		out = append(out, v)
	}
	return out
}

func pageOf(r *http.Request) (Page, error) {
	p := Page{Count: 50, Cursor: r.URL.Query().Get("cursor")}
	if c := r.URL.Query().Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 || n > 1000 {
			return p, apiErr(http.StatusBadRequest, fmt.Sprintf("count %q", c), "give count as a number from 1 to 1000")
		}
		p.Count = n
	}
	return p, nil
}

func digestParam(s, what string) (lantern.Digest, error) {
	if !strings.HasPrefix(s, lantern.DigestPrefix) {
		s = lantern.DigestPrefix + s
	}
	d, err := lantern.ParseDigest(s)
	if err != nil {
		return d, apiErr(http.StatusBadRequest, fmt.Sprintf("%s: %v", what, err), "give sha256:<64 lower-case hex>")
	}
	return d, nil
}

func (s *Scheduler) getAttestation(w http.ResponseWriter, r *http.Request) error {
	d, err := digestParam(r.PathValue("digest"), "attestation digest")
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "dsse" && format != "bundle" {
		return apiErr(http.StatusBadRequest, fmt.Sprintf("unknown format %q", format), "leave format out (or give dsse) for the DSSE envelope, or give format=bundle for a Sigstore bundle")
	}
	a, err := s.st.Attestation(r.Context(), d)
	if err != nil {
		return err
	}
	body, name := a.Raw, d.Hex()[:16]+".intoto.json"
	if format == "bundle" {
		// The same signed envelope in a Sigstore bundle v0.3, with its
		// builder's key hint: what cosign v3 verifies with --bundle.
		env, err := dsse.Unmarshal(a.Raw)
		if err != nil {
			return fmt.Errorf("attestation %s as a bundle: %w", d, err)
		}
		if body, err = bundle.New(env, bundle.KeyHint(a.Builder)); err != nil {
			return fmt.Errorf("attestation %s as a bundle: %w", d, err)
		}
		name = d.Hex()[:16] + ".sigstore.json"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	_, err = w.Write(body)
	return err
}

func (s *Scheduler) getArtefact(w http.ResponseWriter, r *http.Request) error {
	d, err := digestParam(r.PathValue("digest"), "artefact digest")
	if err != nil {
		return err
	}
	verdicts, err := s.st.VerdictsOfArtefact(r.Context(), d)
	if err != nil {
		return err
	}
	atts, next, err := s.artefactAttestations(r, d)
	if err != nil {
		return err
	}
	if len(verdicts) == 0 && len(atts) == 0 {
		return apiErr(http.StatusNotFound, fmt.Sprintf("no builder of this farm has rebuilt %s yet", d), "check the digest; post a source claim to have it rebuilt, or wait for the builders")
	}
	writeJSON(w, http.StatusOK, map[string]any{"digest": d, "verdicts": s.viewVerdicts(verdicts), "attestations": atts, "next": next})
	return nil
}

func (s *Scheduler) artefactAttestations(r *http.Request, d lantern.Digest) ([]attestationView, string, error) {
	page, err := pageOf(r)
	if err != nil {
		return nil, "", err
	}
	var builder lantern.Digest
	if b := r.URL.Query().Get("builder"); b != "" {
		if builder, err = digestParam(b, "builder"); err != nil {
			return nil, "", err
		}
	}
	recs, next, err := s.st.AttestationsByArtefact(r.Context(), d, builder, page)
	if err != nil {
		return nil, "", err
	}
	return viewAttestations(recs), next, nil
}

func (s *Scheduler) getArtefactAttestations(w http.ResponseWriter, r *http.Request) error {
	d, err := digestParam(r.PathValue("digest"), "artefact digest")
	if err != nil {
		return err
	}
	atts, next, err := s.artefactAttestations(r, d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"digest": d, "attestations": atts, "next": next})
	return nil
}

// getEvidence serves the signed envelopes about an artefact (?artefact=, the
// rebuild attestations whose output it is) or a source (?source=NAME@VERSION,
// its source claims on the first page, then every attestation about it), as
// JSON Lines: one envelope per line, compacted (a DSSE signature covers the
// payload, not the envelope's spacing). The next page, if any, is in the Link
// header. Clients trust none of it; they check every signature themselves.
func (s *Scheduler) getEvidence(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	var raws [][]byte
	var next string
	switch art, src := q.Get("artefact"), q.Get("source"); {
	case art != "" && src == "":
		d, err := digestParam(art, "artefact")
		if err != nil {
			return err
		}
		recs, n, err := s.st.AttestationsByArtefact(r.Context(), d, lantern.Digest{}, page)
		if err != nil {
			return err
		}
		for _, a := range recs {
			raws = append(raws, a.Raw)
		}
		next = n
	case src != "" && art == "":
		at := strings.LastIndex(src, "@")
		if at <= 0 || at == len(src)-1 {
			return apiErr(http.StatusBadRequest, fmt.Sprintf("source %q", src), "give source=NAME@VERSION, such as golang.org/x/tools/cmd/stringer@v0.30.0")
		}
		name, version := src[:at], src[at+1:]
		if page.Cursor == "" {
			claims, err := s.st.ClaimsOf(r.Context(), name, version)
			if err != nil {
				return err
			}
			for _, c := range claims {
				raws = append(raws, c.Raw)
			}
		}
		recs, n, err := s.st.AttestationsBySource(r.Context(), name, version, page)
		if err != nil {
			return err
		}
		for _, a := range recs {
			raws = append(raws, a.Raw)
		}
		next = n
	default:
		return apiErr(http.StatusBadRequest, "give exactly one of artefact and source", "ask for ?artefact=sha256:<hex> or ?source=NAME@VERSION")
	}
	if next != "" {
		nq := url.Values{}
		for _, k := range []string{"artefact", "source", "count"} {
			if v := q.Get(k); v != "" {
				nq.Set(k, v)
			}
		}
		nq.Set("cursor", next)
		// Relative to this page, so that it holds behind a proxy's path prefix.
		w.Header().Set("Link", fmt.Sprintf("<?%s>; rel=\"next\"", nq.Encode()))
	}
	w.Header().Set("Content-Type", "application/jsonl")
	var buf bytes.Buffer
	for _, raw := range raws {
		// What workers publish is compact already; only an envelope posted
		// with line breaks in it needs compacting to stay on one line.
		if bytes.ContainsAny(raw, "\r\n") {
			if err := json.Compact(&buf, raw); err != nil {
				return fmt.Errorf("evidence: a stored envelope is not JSON: %w", err)
			}
		} else {
			buf.Write(raw)
		}
		buf.WriteByte('\n')
	}
	_, err = w.Write(buf.Bytes())
	return err
}

func (s *Scheduler) getSource(w http.ResponseWriter, r *http.Request) error {
	src := r.PathValue("source")
	at := strings.LastIndex(src, "@")
	if at <= 0 || at == len(src)-1 {
		return apiErr(http.StatusBadRequest, fmt.Sprintf("source %q", src), "give NAME@VERSION, as /api/v1/sources/golang.org/x/tools/cmd/stringer@v0.30.0")
	}
	name, version := src[:at], src[at+1:]
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	claims, err := s.st.ClaimsOf(r.Context(), name, version)
	if err != nil {
		return err
	}
	verdicts, err := s.st.Verdicts(r.Context(), name, version)
	if err != nil {
		return err
	}
	atts, next, err := s.st.AttestationsBySource(r.Context(), name, version, page)
	if err != nil {
		return err
	}
	if len(claims) == 0 && len(atts) == 0 {
		return apiErr(http.StatusNotFound, fmt.Sprintf("no claim of %s", src), "post a signed source claim to /api/v1/claims")
	}
	views := s.viewVerdicts(verdicts)
	awaiting, err := s.awaiting(r.Context(), claims, verdicts)
	if err != nil {
		return err
	}
	resp := map[string]any{
		"name": name, "version": version, "claims": claims, "verdicts": views,
		"attestations": viewAttestations(atts), "next": next,
	}
	if len(awaiting) > 0 {
		resp["awaiting"] = awaiting
	}
	if c := Conflicts(claims); len(c) > 1 {
		resp["status"], resp["conflict"] = lantern.StatusConflict, c
	} else if u := s.sourceReach(views); u != nil {
		resp["unreachable"] = u
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// Awaiting is a label of a job that has no verdict yet: no builder has
// answered under it. A source's verdicts are all in only when none is
// awaited; until then one label reproduced says nothing of the others.
// Label is empty for a job whose labels the farm did not read (one past
// the first maxAwaitedJobs of the source): it counts as awaited all the
// same, as nothing says it is decided.
type Awaiting struct {
	Job   string `json:"job"`
	Label string `json:"label"`
}

// maxAwaitedJobs bounds the jobs of one source GET /api/v1/sources reads
// for their labels; the others are awaited without a label.
const maxAwaitedJobs = 100

// awaiting returns the labels of the claims' jobs that have no verdict: the
// labels every version of the job's recipe this farm knows makes of it
// (the versions that make nothing of it aside).
func (s *Scheduler) awaiting(ctx context.Context, claims []ClaimRecord, verdicts []lantern.Verdict) ([]Awaiting, error) {
	have := map[Awaiting]bool{}
	for _, v := range verdicts {
		have[Awaiting{v.Job, v.Label}] = true
	}
	var out []Awaiting
	seen := map[string]bool{}
	for _, c := range claims {
		for _, id := range c.Jobs {
			if seen[id] {
				continue
			}
			seen[id] = true
			if len(seen) > maxAwaitedJobs {
				// Not read: awaited, rather than taken as decided (a
				// claimer's hundred builds would hide another's job).
				out = append(out, Awaiting{Job: id})
				continue
			}
			j, err := s.st.Job(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, l := range s.expectedLabels(j.Job) {
				if a := (Awaiting{id, l}); !have[a] {
					out = append(out, a)
				}
			}
		}
	}
	return out, nil
}

// expectedLabels are the labels every version of job's recipe that makes
// something of it makes.
func (s *Scheduler) expectedLabels(job lantern.Job) []string {
	var labels []string
	first := true
	for _, v := range s.cfg.RecipeVersions {
		if v.Name != job.Recipe || v.Labels == nil {
			continue
		}
		ls := v.Labels(job)
		if len(ls) == 0 {
			continue
		}
		if first {
			labels, first = slices.Clone(ls), false
			continue
		}
		labels = slices.DeleteFunc(labels, func(l string) bool { return !slices.Contains(ls, l) })
	}
	return labels
}

// SourceClaims are the claims that give a name@version one source archive
// (and, for a Go module, one h1: hash).
type SourceClaims struct {
	Digest lantern.Digest     `json:"digest"`
	GoSum  string             `json:"goSum,omitempty"`
	Claims []lantern.ClaimRef `json:"claims"`
}

// Conflicts groups claims of one name@version by the source archive they
// give it, and its Go h1: hash, in the order first claimed; more than one
// group is a conflict.
func Conflicts(claims []ClaimRecord) []SourceClaims {
	var out []SourceClaims
	for _, c := range claims {
		src := c.Claim.Source
		i := slices.IndexFunc(out, func(sc SourceClaims) bool { return sc.Digest == src.Digest && sc.GoSum == src.GoSum })
		if i < 0 {
			i = len(out)
			out = append(out, SourceClaims{Digest: src.Digest, GoSum: src.GoSum})
		}
		out[i].Claims = append(out[i].Claims, lantern.ClaimRef{Envelope: c.Envelope, Signer: c.Signer})
	}
	return out
}

type builderView struct {
	ID        lantern.Digest `json:"id"`
	PublicKey string         `json:"publicKey"`
	Name      string         `json:"name,omitempty"`
	Added     time.Time      `json:"added"`
	Revoked   time.Time      `json:"revoked,omitzero"`
}

func viewBuilder(b BuilderRecord) builderView {
	return builderView{b.ID, string(b.PublicKey), b.Name, b.Added, b.Revoked}
}

// getClaimKeys lists the keys whose source claims the farm accepts, for a
// builder's operator who chooses to accept the same (lantern worker
// --farm-claim-keys).
func (s *Scheduler) getClaimKeys(w http.ResponseWriter, r *http.Request) error {
	type keyView struct {
		ID        lantern.Digest `json:"id"`
		PublicKey string         `json:"publicKey"`
	}
	out := make([]keyView, 0, len(s.cfg.ClaimKeys))
	for _, k := range s.cfg.ClaimKeys {
		out = append(out, keyView{k.ID(), string(k.MarshalPEM())})
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
	return nil
}

func (s *Scheduler) getBuilders(w http.ResponseWriter, r *http.Request) error {
	bs, err := s.st.Builders(r.Context())
	if err != nil {
		return err
	}
	out := make([]builderView, 0, len(bs))
	for _, b := range bs {
		out = append(out, viewBuilder(b))
	}
	writeJSON(w, http.StatusOK, map[string]any{"builders": out, "threshold": s.cfg.Threshold})
	return nil
}

func (s *Scheduler) getBuilder(w http.ResponseWriter, r *http.Request) error {
	id, err := digestParam(r.PathValue("id"), "builder id")
	if err != nil {
		return err
	}
	bs, err := s.st.Builders(r.Context())
	if err != nil {
		return err
	}
	for _, b := range bs {
		if b.ID != id {
			continue
		}
		page, err := pageOf(r)
		if err != nil {
			return err
		}
		atts, next, err := s.st.AttestationsByBuilder(r.Context(), id, page)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"builder": viewBuilder(b), "attestations": viewAttestations(atts), "next": next,
		})
		return nil
	}
	return apiErr(http.StatusNotFound, fmt.Sprintf("no builder %s", id), "list the builders at /api/v1/builders")
}

// jobView is a job with the state of every builder of the farm: a builder
// that has not answered yet is queued, or building where it says so.
type jobView struct {
	lantern.Job
	Builders map[lantern.Digest]BuilderJob `json:"builders"`
}

func (s *Scheduler) viewJob(j JobRecord) jobView {
	v := jobView{Job: j.Job, Builders: map[lantern.Digest]BuilderJob{}}
	for _, b := range s.sortedBuilders() {
		v.Builders[b] = BuilderJob{State: JobQueued, Updated: j.Job.Created}
	}
	for b, st := range j.Builders {
		v.Builders[b] = st
	}
	now := s.cfg.Now()
	for b, st := range v.Builders {
		if st.State != JobQueued {
			continue
		}
		if since, ok := s.building.since(b, j.Job.ID, now); ok {
			v.Builders[b] = BuilderJob{State: JobBuilding, Attestations: st.Attestations, Updated: since}
		}
	}
	return v
}

func (s *Scheduler) getJobs(w http.ResponseWriter, r *http.Request) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	state := JobState(r.URL.Query().Get("state"))
	switch state {
	case "", JobQueued, JobDone, JobFailed, JobDead:
	default:
		return apiErr(http.StatusBadRequest, fmt.Sprintf("state %q", state), "give state as queued, done, failed or dead")
	}
	jobs, next, err := s.st.Jobs(r.Context(), state, page)
	if err != nil {
		return err
	}
	out := make([]jobView, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, s.viewJob(j))
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out, "next": next})
	return nil
}

func (s *Scheduler) getJob(w http.ResponseWriter, r *http.Request) error {
	j, err := s.st.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.viewJob(*j))
	return nil
}

func (s *Scheduler) getDeadLetters(w http.ResponseWriter, r *http.Request) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	dls, next, err := s.st.DeadLetters(r.Context(), page)
	if err != nil {
		return err
	}
	if dls == nil {
		dls = []DeadLetter{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deadLetters": dls, "next": next})
	return nil
}

// ObjectReader reads the farm's object store, where workers keep their build
// logs by digest (natsq.Queue is one). The API serves logs when the
// scheduler's Queue is also an ObjectReader.
type ObjectReader interface {
	// GetObject opens the object named d; the reader fails at its end if
	// the bytes are not d's.
	GetObject(ctx context.Context, d lantern.Digest) (io.ReadCloser, error)
}

// MaxLogBytes is the most of a build log the API serves; workers cut their
// logs at 4 MiB by default, so only a worker configured otherwise reaches
// it, and the rest is left out with a last line saying so.
const MaxLogBytes = 8 << 20

// ReadLog reads at most max bytes of the object d from objects and reports
// whether there was more. A log read to its end has been checked against d.
func ReadLog(ctx context.Context, objects ObjectReader, d lantern.Digest, max int64) ([]byte, bool, error) {
	rc, err := objects.GetObject(ctx, d)
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, false, fmt.Errorf("read log %s: %w", d, err)
	}
	if int64(len(b)) > max {
		return b[:max], true, nil
	}
	return b, false, nil
}

// getAttestationLog serves the build log an attestation names, as plain
// text that no browser may take for a page: the log is the builder's, and
// holds whatever the build printed.
func (s *Scheduler) getAttestationLog(w http.ResponseWriter, r *http.Request) error {
	d, err := digestParam(r.PathValue("digest"), "attestation digest")
	if err != nil {
		return err
	}
	a, err := s.st.Attestation(r.Context(), d)
	if err != nil {
		return err
	}
	if a.Log.IsZero() {
		return apiErr(http.StatusNotFound, fmt.Sprintf("attestation %s names no build log", d), "nothing to do: its builder kept none")
	}
	objects, ok := s.q.(ObjectReader)
	if !ok {
		return apiErr(http.StatusNotImplemented, "this scheduler has no object store to read logs from", "read the log from the farm's NATS object store "+a.Log.String())
	}
	b, cut, err := ReadLog(r.Context(), objects, a.Log, MaxLogBytes)
	if err != nil {
		s.log.Warn("build log unreadable", "attestation", d.Short(), "log", a.Log.Short(), "error", err)
		return apiErr(http.StatusBadGateway, fmt.Sprintf("log %s of attestation %s: %v", a.Log, d, err), "the farm's object store lacks the log or could not be read; try again, or ask the farm's operator")
	}
	if cut {
		b = append(b, fmt.Sprintf("\n[lantern: log cut at %d bytes]\n", MaxLogBytes)...)
	}
	return writeText(w, b, a.Log.Hex()[:16]+".log")
}

// writeText serves b as plain text that no browser may take for a page.
func writeText(w http.ResponseWriter, b []byte, filename string) error {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Content-Disposition", fmt.Sprintf("inline; filename=%q", filename))
	_, err := w.Write(b)
	return err
}

// diffOf reads the difference report the path's {a} and {b} name.
func (s *Scheduler) diffOf(r *http.Request) (*DiffRecord, error) {
	a, err := digestParam(r.PathValue("a"), "output a")
	if err != nil {
		return nil, err
	}
	b, err := digestParam(r.PathValue("b"), "output b")
	if err != nil {
		return nil, err
	}
	d, err := s.st.Diff(r.Context(), a, b)
	if errors.Is(err, ErrNotFound) {
		return nil, apiErr(http.StatusNotFound, fmt.Sprintf("no difference report on %s and %s", a, b),
			"reports are made for the outputs of two groups of one verdict that disagree; see the verdict's groups under /api/v1/sources")
	}
	return d, err
}

// getDiff serves the record of a difference report: pending, done (with
// the report's digest) or failed (with the reason).
func (s *Scheduler) getDiff(w http.ResponseWriter, r *http.Request) error {
	d, err := s.diffOf(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// getDiffReport serves diffoscope's report as plain text: it quotes the
// builders' outputs, which hold whatever their builds wrote.
func (s *Scheduler) getDiffReport(w http.ResponseWriter, r *http.Request) error {
	d, err := s.diffOf(r)
	if err != nil {
		return err
	}
	switch d.State {
	case DiffPending:
		return apiErr(http.StatusNotFound, fmt.Sprintf("the report on %s and %s is not made yet", d.A, d.B), "wait a little and ask again")
	case DiffFailed:
		return apiErr(http.StatusNotFound, fmt.Sprintf("the report on %s and %s failed: %s", d.A, d.B, d.Reason), "nothing to do here: the farm's operator sees why in the scheduler's log")
	}
	objects, ok := s.q.(ObjectReader)
	if !ok {
		return apiErr(http.StatusNotImplemented, "this scheduler has no object store to read reports from", "read the report from the farm's NATS object store "+d.Report.String())
	}
	b, cut, err := ReadLog(r.Context(), objects, d.Report, MaxLogBytes)
	if err != nil {
		return apiErr(http.StatusBadGateway, fmt.Sprintf("report %s: %v", d.Report, err), "the farm's object store lacks the report or could not be read; try again, or ask the farm's operator")
	}
	if cut {
		b = append(b, fmt.Sprintf("\n[lantern: report cut at %d bytes]\n", MaxLogBytes)...)
	}
	return writeText(w, b, "diffoscope-"+d.A.Hex()[:12]+"-"+d.B.Hex()[:12]+".txt")
}

// getSources lists sources with their verdicts: newest first, or those the
// query q finds (a name, a version, name@version, or a digest), by name.
func (s *Scheduler) getSources(w http.ResponseWriter, r *http.Request) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	var sources []SourceRecord
	var next string
	if q := r.URL.Query().Get("q"); q != "" {
		sources, next, err = s.st.SearchSources(r.Context(), ParseSourceQuery(q), page)
	} else {
		sources, next, err = s.st.Sources(r.Context(), page)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"sources": sources, "next": next})
	return nil
}
