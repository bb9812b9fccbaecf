package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/lanternfarm/lantern"
)

// funcs are the templates' helpers. None returns template.HTML or any other
// type html/template trusts: everything they return is escaped where it
// lands.
var funcs = template.FuncMap{
	"short": func(d lantern.Digest) string { return d.Short() },
	// set reports whether a digest is there: a Digest is a struct, which
	// templates take as true even when it is zero.
	"set":            func(d lantern.Digest) bool { return !d.IsZero() },
	"sourceURL":      sourceURL,
	"badgeURL":       badgeURL,
	"artefactURL":    func(d lantern.Digest) string { return digestURL("artefacts", d) },
	"builderURL":     func(d lantern.Digest) string { return digestURL("builders", d) },
	"attestationURL": func(d lantern.Digest) string { return digestURL("attestations", d) },
	// The API's: the signed envelope and the raw log.
	"downloadURL": func(d lantern.Digest) string { return "/api/v1/attestations/" + d.String() },
	"logURL":      func(d lantern.Digest) string { return "/api/v1/attestations/" + d.String() + "/log" },
	"diffURL":     diffURL,
	"reportURL":   func(a, b lantern.Digest) string { return "/api/v1" + diffURL(a, b) + "/report" },
	"time":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"isoTime":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"duration":    duration,
	"statusClass": statusClass,
	"rowOf": func(name string, id lantern.Digest) outcomeRow {
		return outcomeRow{Builder: id, BuilderName: name}
	},
	"plural": func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.Itoa(n) + " " + many
	},
}

// diffURL is the page of the difference report on outputs a and b.
func diffURL(a, b lantern.Digest) string { return "/diffs/" + a.String() + "/" + b.String() }

func itoa(n int) string { return strconv.Itoa(n) }

// statusClass is the CSS class of a status's badge; a status the dashboard
// does not know gets a grey one.
func statusClass(s lantern.Status) string {
	switch s {
	case lantern.StatusReproduced, lantern.StatusMismatch, lantern.StatusPending, lantern.StatusFailed, lantern.StatusConflict:
		return string(s)
	}
	return "unknown"
}

// duration writes how long a build took as people say it: "42 s",
// "3 min 07 s", "1 h 02 min".
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		s := int(d.Round(time.Second) / time.Second)
		return fmt.Sprintf("%d min %02d s", s/60, s%60)
	}
	m := int(d.Round(time.Minute) / time.Minute)
	return fmt.Sprintf("%d h %02d min", m/60, m%60)
}

// The badge: an SVG in the shape READMEs carry, "lantern | reproduced 2/2".

type badge struct {
	Subject, Message string
	Color            string
	// Widths and text centres, in pixels.
	Width, SubjectWidth, MessageWidth int
	SubjectX, MessageX                int
	SubjectLen, MessageLen            int
}

var badgeColors = map[lantern.Status]string{
	lantern.StatusReproduced: "#2e7d32",
	lantern.StatusMismatch:   "#c62828",
	lantern.StatusPending:    "#9e9e9e",
	lantern.StatusFailed:     "#ef6c00",
}

// textWidth estimates the width of s in 11 px Verdana, the badges' font,
// closely enough for a box around it; the SVG's textLength makes the text
// fit the box whatever font the reader has.
func textWidth(s string) int {
	w := 0.0
	for _, r := range s {
		switch {
		case r == ' ' || r == '.' || r == ':' || r == '/' || r == 'i' || r == 'l' || r == 'j' || r == 't' || r == 'f' || r == '1' || r == 'r':
			w += 4.5
		case r == 'm' || r == 'w' || r == 'M' || r == 'W':
			w += 10.5
		case r >= 'A' && r <= 'Z':
			w += 8
		default:
			w += 7
		}
	}
	return int(w + 0.5)
}

func newBadge(subject, message string, color string) badge {
	const pad = 6
	// A label may be long; a badge is not the place for all of it.
	if utf8.RuneCountInString(subject) > 40 {
		subject = string([]rune(subject)[:39]) + "…"
	}
	b := badge{Subject: subject, Message: message, Color: color}
	b.SubjectLen, b.MessageLen = textWidth(subject), textWidth(message)
	b.SubjectWidth, b.MessageWidth = b.SubjectLen+2*pad, b.MessageLen+2*pad
	b.Width = b.SubjectWidth + b.MessageWidth
	b.SubjectX, b.MessageX = b.SubjectWidth/2, b.SubjectWidth+b.MessageWidth/2
	return b
}

// serveBadge serves the badge of a source: its verdict on ?label=L, or the
// worst of its labels' verdicts. A source the farm does not know gets a
// grey "unknown" badge, with status 200 all the same, so that a README
// shows it rather than a broken image.
func (h *handler) serveBadge(w http.ResponseWriter, r *http.Request) {
	name, version, err := sourceParam(r, ".svg")
	if err != nil {
		h.render(w, r, "", nil, err)
		return
	}
	verdicts, err := h.cfg.Store.Verdicts(r.Context(), name, version)
	if err != nil {
		h.render(w, r, "", nil, err)
		return
	}
	subject := "lantern"
	if label := r.URL.Query().Get("label"); label != "" {
		subject = label
		var kept []lantern.Verdict
		for _, v := range verdicts {
			if v.Label == label {
				kept = append(kept, v)
			}
		}
		verdicts = kept
	}
	var b badge
	switch len(verdicts) {
	case 0:
		claims, err := h.cfg.Store.ClaimsOf(r.Context(), name, version)
		if err != nil {
			h.render(w, r, "", nil, err)
			return
		}
		if len(claims) == 0 {
			b = newBadge(subject, "unknown", "#9e9e9e")
		} else {
			b = newBadge(subject, pendingSummary(h.cfg.Threshold), badgeColors[lantern.StatusPending])
		}
	case 1:
		b = newBadge(subject, summary(verdicts[0]), badgeColors[verdicts[0].Status])
	default:
		// Several labels: the worst status, and the fewest builders that
		// agree on any label of the most required.
		st := overall(verdicts)
		agree, threshold := -1, 0
		for _, v := range verdicts {
			if a := agreeing(v); agree < 0 || a < agree {
				agree = a
			}
			threshold = max(threshold, v.Threshold)
		}
		msg := fmt.Sprintf("%s %d/%d", st, agree, threshold)
		for _, v := range verdicts {
			if v.Status == st && st != lantern.StatusReproduced && st != lantern.StatusPending {
				msg = summary(v) // the first label that has the worst status
				break
			}
		}
		b = newBadge(subject, msg, badgeColors[st])
	}
	var buf bytes.Buffer
	if err := h.badge.Execute(&buf, b); err != nil {
		h.log.Error("dashboard badge", "error", err)
		http.Error(w, "the badge could not be rendered", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "image/svg+xml")
	hd.Set("Content-Security-Policy", "default-src 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	// Verdicts change as builders answer; image proxies must ask again.
	hd.Set("Cache-Control", "no-cache, max-age=0")
	w.Write(buf.Bytes())
}
