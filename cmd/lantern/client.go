package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// postClaim posts a signed claim's envelope to the scheduler's API at api
// and returns the job it made.
func postClaim(ctx context.Context, api string, envelope []byte) (job string, duplicate bool, err error) {
	u, err := apiURL(api, "/api/v1/claims")
	if err != nil {
		return "", false, err
	}
	ctx, cancel := context.WithTimeout(ctx, postTime)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(envelope))
	if err != nil {
		return "", false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "", false, fmt.Errorf("post the claim: the farm at %s did not answer within %v", api, postTime)
	}
	if err != nil {
		return "", false, fmt.Errorf("post the claim: %w (is the scheduler running at %s?)", err, api)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "", false, fmt.Errorf("post the claim: the farm at %s did not finish its answer within %v", api, postTime)
	}
	if err != nil {
		return "", false, fmt.Errorf("post the claim: reading the farm's answer: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return "", false, fmt.Errorf("post the claim: %s: %s", resp.Status, apiError(body))
	}
	var r struct {
		Job       string
		Duplicate bool
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", false, fmt.Errorf("post the claim: the API answered %q: %w", body, err)
	}
	return r.Job, r.Duplicate, nil
}

// postTime bounds posting a claim, answer included: a scheduler takes a
// claim in well under a second, and a farm that holds the connection
// open must not hold a CI job with it.
var postTime = 2 * time.Minute

// apiURL joins the API's base URL and a path.
func apiURL(api, path string) (string, error) {
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("API %q: want the scheduler's URL, such as http://127.0.0.1:8080", api)
	}
	return strings.TrimSuffix(u.String(), "/") + path, nil
}

// apiError returns the message of an API error body ({error, fix}).
func apiError(body []byte) string {
	var e struct{ Error, Fix string }
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		if e.Fix != "" {
			return printable(e.Error + " (" + e.Fix + ")")
		}
		return printable(e.Error)
	}
	return printable(strings.TrimSpace(string(body)))
}

func verdictCommand() command {
	return command{
		name:    "verdict",
		args:    "NAME@VERSION",
		summary: "print the farm's verdicts on a source, waiting for them if asked",
		long: `Verdict asks the scheduler's API for the verdicts on NAME@VERSION — one per
label: reproduced, mismatch, failed or pending — and prints them with the
builders of each output. With --wait it polls until no verdict is pending,
for at most that long, printing progress; it stops at once, saying so, when
the farm has fewer builders than its threshold: no wait can reproduce
anything there. It exits 0 only when every verdict is reproduced; 1 when one
is pending or failed, there is none yet, or the time runs out (or cannot
help); 3 on a mismatch or a conflict.

Example:
  lantern verdict --wait 20m golang.org/x/tools/cmd/stringer@v0.30.0`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			api := f.String("api", envOr("LANTERN_API", "http://127.0.0.1:8080"), "the scheduler's `URL` (default $LANTERN_API)")
			wait := f.Duration("wait", 0, "wait up to `DURATION` for the verdicts to settle")
			asJSON := f.Bool("json", false, "print the verdicts as JSON")
			builders := f.Int("builders", 0, "with --wait, wait until `N` builders have answered (default: until no verdict is pending)")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) != 1 || !strings.Contains(args[0], "@") {
					return usagef("verdict takes one NAME@VERSION, such as golang.org/x/tools/cmd/stringer@v0.30.0")
				}
				u, err := apiURL(*api, "/api/v1/sources/"+args[0])
				if err != nil {
					return err
				}
				deadline := time.Now().Add(*wait)
				last := ""
				for {
					vs, err := getVerdicts(ctx, u)
					if err == nil && (settled(vs, *builders) || vs.unreachable() != "") {
						// Unreachable: no wait makes the farm's builders more.
						return printVerdicts(io, args[0], vs, *asJSON)
					}
					if time.Now().After(deadline) {
						if err != nil {
							return err
						}
						if *wait > 0 {
							printVerdicts(io, args[0], vs, *asJSON)
							return fmt.Errorf("%s: verdicts still pending after %s", args[0], *wait)
						}
						return printVerdicts(io, args[0], vs, *asJSON)
					}
					status := "waiting for the scheduler"
					if err == nil {
						status = progress(vs)
					}
					if status != last {
						fmt.Fprintf(io.err, "%s %s: %s\n", time.Now().Format("15:04:05"), args[0], status)
						last = status
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(2 * time.Second):
					}
				}
			}
		},
	}
}

// sourceVerdicts is what the API says of a name@version: its verdicts, and
// the sources claims give it when they give more than one.
type sourceVerdicts struct {
	Verdicts []lantern.Verdict
	Conflict []struct {
		Digest lantern.Digest
		GoSum  string
		Claims []lantern.ClaimRef
	}
	// Unreachable, when set, says that the farm has too few builders to
	// reproduce what is pending: waiting longer cannot help.
	Unreachable *scheduler.Unreachable
	// Awaiting are the labels of the source's jobs no builder has answered
	// under yet: the verdicts are not all in.
	Awaiting []scheduler.Awaiting
	// Claims are the source claims of the name@version the farm has
	// stored, by their envelopes' digests.
	Claims []struct {
		Envelope lantern.Digest
	}
}

// stored reports whether the farm has stored the claim whose envelope's
// digest is d: a posted claim is stored a moment after the API took it.
func (sv *sourceVerdicts) stored(d lantern.Digest) bool {
	return sv != nil && slices.ContainsFunc(sv.Claims, func(c struct{ Envelope lantern.Digest }) bool { return c.Envelope == d })
}

// unreachable reports why sv's pending verdicts can never be reproduced on
// the farm, or "" when they may be.
func (sv *sourceVerdicts) unreachable() string {
	if sv == nil || sv.Unreachable == nil || len(sv.Conflict) > 1 {
		return ""
	}
	return printable(sv.Unreachable.Message)
}

// apiGet GETs u and returns the response's status and at most max bytes of
// its body.
func apiGet(ctx context.Context, u string, max int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, max))
	return resp, body, err
}

func getVerdicts(ctx context.Context, u string) (*sourceVerdicts, error) {
	resp, body, err := apiGet(ctx, u, 16<<20)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil // not claimed yet, or no job done
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", printable(resp.Status), apiError(body))
	}
	var v sourceVerdicts
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("the API answered %q: %w", truncateBytes(body), err)
	}
	return &v, nil
}

func truncateBytes(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// settled reports whether no verdict is pending and, if builders is above
// 0, that many builders have answered.
func settled(sv *sourceVerdicts, builders int) bool {
	if sv == nil {
		return false
	}
	if len(sv.Conflict) > 1 {
		return true // no rebuild settles a conflict
	}
	vs := sv.Verdicts
	if len(vs) == 0 || len(sv.Awaiting) > 0 {
		return false
	}
	answered := map[lantern.Digest]bool{}
	for _, v := range vs {
		if v.Status == lantern.StatusPending {
			return false
		}
		for _, g := range v.Groups {
			for _, b := range g.Builders {
				answered[b] = true
			}
		}
		for _, f := range v.Failures {
			answered[f.Builder] = true
		}
	}
	return len(answered) >= builders
}

func progress(sv *sourceVerdicts) string {
	var vs []lantern.Verdict
	if sv != nil {
		vs = sv.Verdicts
	}
	if len(vs) == 0 {
		return "no rebuild yet"
	}
	var parts []string
	for _, v := range vs {
		n := 0
		for _, g := range v.Groups {
			n += len(g.Builders)
		}
		parts = append(parts, fmt.Sprintf("%s %s (%d rebuilt, %d failed)", printable(v.Label), printable(string(v.Status)), n, len(v.Failures)))
	}
	for _, a := range sv.Awaiting {
		parts = append(parts, awaitedLabel(a)+" no verdict yet")
	}
	return strings.Join(parts, "; ")
}

// printVerdicts prints vs, and returns a *contradictedError (exit 3) when
// one is a mismatch or a conflict, and an error (exit 1) when there is none
// or one is not reproduced (yet): only a source whose every verdict is
// reproduced exits 0.
func printVerdicts(io *stdio, source string, sv *sourceVerdicts, asJSON bool) error {
	if sv == nil {
		sv = &sourceVerdicts{}
	}
	var err error
	if asJSON {
		var b []byte
		if b, err = json.MarshalIndent(sv.Verdicts, "", "  "); err == nil {
			_, err = fmt.Fprintf(io.out, "%s\n", b)
		}
	} else {
		err = writeVerdicts(io, source, sv)
	}
	if err != nil {
		return err
	}
	return verdictsErr(source, sv)
}

// verdictsErr is what sv says of source, as printVerdicts returns it: nil
// when every verdict is reproduced, a *contradictedError on a mismatch or a
// conflict, another error when there is none or one is not reproduced.
func verdictsErr(source string, sv *sourceVerdicts) error {
	if sv == nil {
		sv = &sourceVerdicts{}
	}
	vs := sv.Verdicts
	var contradicted, notYet []string
	if len(sv.Conflict) > 1 {
		contradicted = append(contradicted, fmt.Sprintf("conflict: claims give it %d sources", len(sv.Conflict)))
	}
	for _, v := range vs {
		switch v.Status {
		case lantern.StatusMismatch, lantern.StatusConflict:
			contradicted = append(contradicted, printable(v.Label+" "+string(v.Status)+againstPublished(v)))
		case lantern.StatusReproduced:
		default:
			notYet = append(notYet, printable(strings.TrimSpace(v.Label+" "+string(v.Status))))
		}
	}
	for _, a := range sv.Awaiting {
		notYet = append(notYet, awaitedLabel(a)+" no verdict yet")
	}
	switch {
	case len(contradicted) > 0:
		return &contradictedError{fmt.Sprintf("%s: contradicted: %s", source, strings.Join(contradicted, ", "))}
	case len(vs) == 0 && sv.unreachable() != "":
		return errors.New(source + ": no verdicts yet, and the farm " + sv.unreachable())
	case len(vs) == 0:
		return errors.New(source + ": no verdicts: the farm has no rebuild of it yet (was a claim posted?)")
	case len(notYet) > 0 && sv.unreachable() != "":
		return fmt.Errorf("%s: not reproduced: %s: %s", source, strings.Join(notYet, ", "), sv.unreachable())
	case len(notYet) > 0:
		return fmt.Errorf("%s: not reproduced: %s", source, strings.Join(notYet, ", "))
	}
	return nil
}

// awaitedLabel is a's label, printable, or what stands for the labels of a
// job the farm did not read (too many jobs of one source).
func awaitedLabel(a scheduler.Awaiting) string {
	if a.Label == "" {
		return "job " + printable(a.Job) + " (labels not read)"
	}
	return printable(a.Label)
}

// againstPublished says, of a mismatch whose builders agree with each
// other and not with the published artefact, what each made.
func againstPublished(v lantern.Verdict) string {
	if v.Status != lantern.StatusMismatch || v.Published.IsZero() || len(v.Groups) != 1 || v.Groups[0].Published {
		return ""
	}
	return fmt.Sprintf(" against the published artefact: the builders made %s, the published is %s", v.Groups[0].Output, v.Published)
}

func writeVerdicts(io *stdio, source string, sv *sourceVerdicts) error {
	vs := sv.Verdicts
	if len(sv.Conflict) > 1 {
		fmt.Fprintf(io.out, "%s: conflict: claims give it %d different sources\n", source, len(sv.Conflict))
		for _, c := range sv.Conflict {
			for _, cl := range c.Claims {
				fmt.Fprintf(io.out, "  %s%s  claimed by %s (claim %s)\n", c.Digest, printable(strings.TrimRight(" "+c.GoSum, " ")), cl.Signer.Short(), cl.Envelope.Short())
			}
		}
	}
	for _, a := range sv.Awaiting {
		fmt.Fprintf(io.out, "%s %s: no verdict yet (job %s: no builder has answered under this label)\n", source, awaitedLabel(a), printable(a.Job))
	}
	for _, v := range vs {
		fmt.Fprintf(io.out, "%s %s: %s\n", source, printable(v.Label), printable(string(v.Status)))
		for _, d := range v.Conflicts {
			fmt.Fprintf(io.out, "  conflict   claims give %s another source: %s (this one is %s)\n", source, d, v.Source.Digest)
		}
		if !v.Published.IsZero() {
			fmt.Fprintf(io.out, "  published  %s\n", v.Published)
		}
		for _, c := range v.Claims {
			fmt.Fprintf(io.out, "  claimed by %s (claim %s)\n", c.Signer.Short(), c.Envelope.Short())
		}
		for _, g := range v.Groups {
			fmt.Fprintf(io.out, "  %s  built by %d:", g.Output, len(g.Builders))
			for _, b := range g.Builders {
				fmt.Fprintf(io.out, " %s", b.Short())
			}
			fmt.Fprintln(io.out)
		}
		for _, f := range v.Failures {
			fmt.Fprintf(io.out, "  failed     %s: %s\n", f.Builder.Short(), printable(f.Reason))
		}
		for _, r := range v.Revoked {
			fmt.Fprintf(io.out, "  revoked    %s: its outcome does not count\n", r.Builder.Short())
		}
		if v.Status == lantern.StatusPending && sv.unreachable() != "" {
			fmt.Fprintf(io.out, "  %s\n", sv.unreachable())
		}
	}
	return nil
}
