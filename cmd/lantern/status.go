package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	goio "io"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

func statusCommand() command {
	return command{
		name:    "status",
		summary: "the farm at a glance: builders, their queues, pending and dead jobs, the latest verdicts",
		long: `Status asks the scheduler's API (GET /api/v1/status) how the farm stands and
prints it as tables: each builder — online (a worker of it is waiting for a
job or holding one now), when it was last seen, the jobs queued for it and
being built, its rebuilds and failures and how often its rebuilds agreed
(over its latest 200 attestations: the share of those with a decided verdict
that are in the group of a reproduced one) — then the jobs pending on some
builder and those a builder gave up on (of the newest 500), and the newest
sources with their verdicts. It says so when the farm has fewer builders
than its threshold. On a terminal it is in colour (not with NO_COLOR set).
It exits 0 when the farm answered, 1 when it did not.

Example:
  lantern status --api http://127.0.0.1:8080
  lantern status --json | jq '.builders[] | select(.online | not) | .name'`,
		flags: func(f *flag.FlagSet) func(context.Context, *stdio, []string) error {
			api := f.String("api", envOr("LANTERN_API", "http://127.0.0.1:8080"), "the scheduler's `URL` (default $LANTERN_API)")
			asJSON := f.Bool("json", false, "print the API's answer, as JSON")
			return func(ctx context.Context, io *stdio, args []string) error {
				if len(args) > 0 {
					return usagef("status takes no arguments, got %q", args)
				}
				u, err := apiURL(*api, "/api/v1/status")
				if err != nil {
					return err
				}
				resp, body, err := apiGet(ctx, u, 16<<20)
				if err != nil {
					return fmt.Errorf("farm status: %w (is the scheduler running at %s? give its address with --api)", err, *api)
				}
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("farm status: %s: %s", resp.Status, apiError(body))
				}
				var st scheduler.Status
				if err := json.Unmarshal(body, &st); err != nil {
					return fmt.Errorf("farm status: the API answered %q: %w", truncateBytes(body), err)
				}
				if *asJSON {
					var b bytes.Buffer
					if err := json.Indent(&b, body, "", "  "); err != nil {
						return err
					}
					b.WriteByte('\n')
					_, err := io.out.Write(b.Bytes())
					return err
				}
				return writeStatus(io.out, *api, &st, colourful(io.out), time.Now())
			}
		},
	}
}

// colourful reports whether w is a terminal that may have colour.
func colourful(w goio.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// writeStatus prints st as tables, in colour if colour; times are shown
// relative to now.
func writeStatus(w goio.Writer, api string, st *scheduler.Status, colour bool, now time.Time) error {
	paint := func(code, s string) string {
		if !colour || s == "" {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	fmt.Fprintf(w, "%s  threshold %d\n", paint("1", "Farm "+strings.TrimSuffix(api, "/")), st.Threshold)
	if st.Unreachable != nil {
		fmt.Fprintf(w, "%s\n", paint("33", "Verdicts "+printable(st.Unreachable.Message)+"."))
	}

	fmt.Fprintln(w)
	t := &table{head: []string{"BUILDER", "KEY", "ONLINE", "LAST SEEN", "QUEUED", "BUILDING", "DONE", "FAILED", "AGREEMENT"}}
	for _, b := range st.Builders {
		name := b.Name
		if name == "" {
			name = "—"
		}
		online, oc := "no", "31"
		switch {
		case !b.Revoked.IsZero():
			name, online, oc = name+" (revoked)", "revoked", "2"
		case b.Online:
			online, oc = "yes", "32"
		case b.Queue == nil:
			online, oc = "unknown", "33"
		}
		queued, building := "?", "?"
		if b.Queue != nil {
			queued, building = fmt.Sprint(b.Queue.Queued), fmt.Sprint(b.Queue.Building)
		} else if !b.Revoked.IsZero() {
			queued, building = "—", "—"
		}
		agreement := "—"
		if b.Agreement != nil {
			agreement = fmt.Sprintf("%.0f%% (%d/%d)", *b.Agreement*100, b.Agreed, b.Decided)
		}
		t.add([]string{name, b.ID.Short(), online, ago(b.LastSeen, now), queued, building, fmt.Sprint(b.Done), fmt.Sprint(b.Failed), agreement},
			map[int]string{2: oc})
	}
	if len(st.Builders) == 0 {
		fmt.Fprintln(w, "No builders: enroll one with lantern builder add.")
	} else {
		t.write(w, paint)
	}
	for _, b := range st.Builders {
		if b.QueueError != "" && b.Revoked.IsZero() {
			fmt.Fprintf(w, "  %s: queue unknown: %s\n", b.ID.Short(), printable(b.QueueError))
		}
	}

	fmt.Fprintln(w)
	more := ""
	if st.Jobs.More {
		more = ", older ones not counted"
	}
	dead := fmt.Sprint(st.Jobs.Dead)
	if st.Jobs.Dead > 0 {
		dead = paint("31", dead)
	}
	fmt.Fprintf(w, "Jobs (the newest %d%s): %d pending on some builder, %s dead (GET /api/v1/deadletters lists them)\n",
		st.Jobs.Window, more, st.Jobs.Pending, dead)

	fmt.Fprintln(w)
	if len(st.Sources) == 0 {
		fmt.Fprintln(w, "No sources claimed yet.")
		return nil
	}
	fmt.Fprintln(w, "Latest verdicts")
	vt := &table{head: []string{"SOURCE", "LABEL", "VERDICT", "AGREE", "ADDED"}}
	for _, s := range st.Sources {
		src := s.Name + "@" + s.Version
		if len(s.Verdicts) == 0 {
			vt.add([]string{src, "—", "no rebuild yet", "", ago(s.Added, now)}, nil)
		}
		for _, v := range s.Verdicts {
			agree := 0
			if len(v.Groups) > 0 {
				agree = len(v.Groups[0].Builders)
			}
			verdict := string(v.Status)
			if v.Unreachable != nil {
				verdict += ": " + v.Unreachable.Message
			}
			vt.add([]string{src, v.Label, verdict, fmt.Sprintf("%d/%d", agree, v.Threshold), ago(s.Added, now)},
				map[int]string{2: statusColour(v.Status)})
		}
	}
	vt.write(w, paint)
	return nil
}

func statusColour(s lantern.Status) string {
	switch s {
	case lantern.StatusReproduced:
		return "32"
	case lantern.StatusMismatch, lantern.StatusConflict:
		return "31"
	case lantern.StatusFailed:
		return "35"
	}
	return "33"
}

// ago says how long before now t was: "never" for a zero t.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return t.UTC().Format(time.RFC3339)
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// table aligns columns of plain text; colours are added to whole cells as
// they are written, so that they do not count in the widths.
type table struct {
	head   []string
	rows   [][]string
	colour []map[int]string // per row: column → SGR code
}

// add adds a row; what its cells say is the farm's, printed through
// printable, so that none of it moves the cursor or prints a line.
func (t *table) add(row []string, colour map[int]string) {
	for i, c := range row {
		row[i] = printable(c)
	}
	t.rows = append(t.rows, row)
	t.colour = append(t.colour, colour)
}

func (t *table) write(w goio.Writer, paint func(code, s string) string) {
	width := make([]int, len(t.head))
	for _, r := range append([][]string{t.head}, t.rows...) {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(r []string, colour map[int]string, head bool) {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			switch {
			case head:
				c = paint("1", c)
			case colour[i] != "":
				c = paint(colour[i], c)
			}
			if i == len(r)-1 {
				pad = ""
			}
			b.WriteString(c + pad)
			if i < len(r)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(t.head, nil, true)
	for i, r := range t.rows {
		line(r, t.colour[i], false)
	}
}
