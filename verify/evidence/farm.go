package evidence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/verify"
)

// Limits on what is read from one farm.
const (
	// MaxAnswer bounds one page of a farm's answer.
	MaxAnswer = 64 << 20
	// MaxPages bounds the pages followed for one question.
	MaxPages = 200
	pageSize = 1000
)

// Farm reads the signed envelopes a Lantern farm serves (GET
// /api/v1/evidence). The farm is not trusted: it can withhold evidence, never
// forge it, since verify checks every signature.
type Farm struct {
	// URL is the farm's base address, such as http://127.0.0.1:8080.
	URL    string
	Client *http.Client
	// Save, if not nil, is called with every page as it was received, to
	// keep it for checking again offline.
	Save func(name string, page []byte) error
	// MaxBytes and MaxPieces bound what is read from the farm, over all
	// the questions asked of this Farm: MaxFarmBytes and MaxPieces if zero.
	MaxBytes  int64
	MaxPieces int

	read   int64 // bytes read so far, all questions together
	pieces int   // pieces kept so far
}

// ErrFarm reports a farm that did not answer as a Lantern farm does.
var ErrFarm = errors.New("farm")

// ParseFarmURL checks a farm's base address: http or https, a host, no
// query, user or fragment.
func ParseFarmURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("farm %q: want the farm's address, such as http://127.0.0.1:8080 or https://farm.example.org", s)
	}
	return u, nil
}

// Artefact returns the envelopes the farm serves about an artefact.
func (f *Farm) Artefact(ctx context.Context, d lantern.Digest) ([]verify.Piece, error) {
	return f.get(ctx, url.Values{"artefact": {d.String()}}, "artefact-"+d.Hex())
}

// Source returns the envelopes the farm serves about a source,
// name@version.
func (f *Farm) Source(ctx context.Context, source string) ([]verify.Piece, error) {
	return f.get(ctx, url.Values{"source": {source}}, "source-"+lantern.DigestOf([]byte(source)).Hex()[:16])
}

func (f *Farm) get(ctx context.Context, q url.Values, name string) ([]verify.Piece, error) {
	base, err := ParseFarmURL(f.URL)
	if err != nil {
		return nil, err
	}
	q.Set("count", fmt.Sprint(pageSize))
	next := endpoint(base)
	next.RawQuery = q.Encode()
	maxBytes, maxPieces := cmp.Or(f.MaxBytes, MaxFarmBytes), cmp.Or(f.MaxPieces, MaxPieces)
	var out []verify.Piece
	for page := 1; next != nil; page++ {
		if page > MaxPages {
			return out, fmt.Errorf("%w %s: %w: more than %d pages", ErrFarm, base, ErrTooMuch, MaxPages)
		}
		if f.read >= maxBytes || f.pieces >= maxPieces {
			return out, fmt.Errorf("%w %s: %w: read %d bytes and %d pieces from it, at most %d and %d", ErrFarm, base, ErrTooMuch, f.read, f.pieces, maxBytes, maxPieces)
		}
		b, link, err := f.page(ctx, base, next.String(), min(MaxAnswer, maxBytes-f.read))
		f.read += int64(len(b))
		if err != nil {
			return out, fmt.Errorf("%w %s: %w", ErrFarm, base, err)
		}
		pname := fmt.Sprintf("%s-%03d.jsonl", name, page)
		if f.Save != nil {
			if err := f.Save(pname, b); err != nil {
				return out, err
			}
		}
		n := len(out)
		out, err = split(out, base.String()+" "+pname, b, n+maxPieces-f.pieces)
		f.pieces += len(out) - n
		if err != nil {
			return out, fmt.Errorf("%w %s: %w", ErrFarm, base, err)
		}
		if next, err = nextPage(base, next, link); err != nil {
			return out, fmt.Errorf("%w %s: %w", ErrFarm, base, err)
		}
	}
	return out, nil
}

// page reads one page of at most max bytes. What it read counts against
// the farm's budget even when it fails.
func (f *Farm) page(ctx context.Context, base *url.URL, u string, max int64) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/jsonl")
	c := http.Client{}
	if f.Client != nil {
		c = *f.Client
	}
	// A redirect is followed only on the farm's own endpoint, as a Link is.
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if !onEndpoint(base, req.URL) {
			return fmt.Errorf("redirected to %.200s: a farm's answer must come from its own /api/v1/evidence; if the farm moved, give its new address", req.URL.Redacted())
		}
		return nil
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, "", err
	}
	if int64(len(b)) > max {
		// b is returned only to count it against the farm's budget.
		return b, "", fmt.Errorf("%w: a page of more than %d bytes", ErrTooMuch, max)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, resp.Header.Get("Link"), nil
}

// endpoint returns the address of the farm's evidence. JoinPath alone keeps
// an empty path relative ("api/v1/evidence"), which no absolute path of a
// Link would equal.
func endpoint(base *url.URL) *url.URL {
	u := base.JoinPath("/api/v1/evidence")
	if !strings.HasPrefix(u.Path, "/") {
		u.Path, u.RawPath = "/"+u.Path, ""
	}
	return u
}

// onEndpoint reports whether u is the farm's evidence endpoint.
func onEndpoint(base, u *url.URL) bool {
	return u.Scheme == base.Scheme && u.Host == base.Host && u.Path == endpoint(base).Path && u.User == nil
}

// nextPage reads a Link header's next page, relative to the page it came
// with (a farm behind a path prefix pages too), which must be on the same
// farm and the same endpoint: a farm does not get to send its reader
// elsewhere.
func nextPage(base, page *url.URL, link string) (*url.URL, error) {
	if link == "" {
		return nil, nil
	}
	target, rel, ok := strings.Cut(link, ";")
	target = strings.TrimSpace(target)
	if !ok || strings.TrimSpace(rel) != `rel="next"` || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
		return nil, fmt.Errorf("Link %.200q: want <...>; rel=\"next\"", link)
	}
	ref, err := url.Parse(target[1 : len(target)-1])
	if err != nil {
		return nil, fmt.Errorf("Link %.200q: %w", link, err)
	}
	u := page.ResolveReference(ref)
	if !onEndpoint(base, u) {
		return nil, fmt.Errorf("Link %.200q: the next page must be on the same farm's /api/v1/evidence", link)
	}
	return u, nil
}
