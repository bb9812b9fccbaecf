package evidence_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/lanternfarm/lantern/verify/evidence"
)

// endlessFarm answers every question with page, and a Link to itself: a
// hostile farm that never stops. It counts the bytes it sent.
func endlessFarm(t *testing.T, page []byte) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<?cursor=again>; rel="next"`)
		n, _ := w.Write(page)
		sent.Add(int64(n))
	}))
	t.Cleanup(srv.Close)
	return srv, &sent
}

// TestFarmBudget: what one farm may send is bounded over all the questions
// asked of it, not per page or per question: lantern verify asks a farm
// about the artefact and up to 32 sources, each up to MaxPages pages of up
// to MaxAnswer bytes, and kept every page: one question with 8 MiB pages
// held 1.6 GB, and at MaxAnswer a farm could make its reader hold 12.8 GB a
// question.
func TestFarmBudget(t *testing.T) {
	if evidence.MaxFarmBytes > 1<<30 || evidence.MaxPieces > 1<<20 {
		t.Errorf("MaxFarmBytes %d, MaxPieces %d: a farm may cost its reader more than a GiB", evidence.MaxFarmBytes, evidence.MaxPieces)
	}
	askAll := func(f *evidence.Farm) (pieces int, errs []error) {
		got, err := f.Artefact(t.Context(), artefact)
		pieces, errs = len(got), append(errs, err)
		for i := range 32 {
			got, err := f.Source(t.Context(), fmt.Sprintf("example.org/tool@v%d", i))
			pieces += len(got)
			errs = append(errs, err)
		}
		return pieces, errs
	}

	t.Run("bytes", func(t *testing.T) {
		// One JSON value a page, larger than a piece may be.
		page := append(append([]byte(`"`), bytes.Repeat([]byte("a"), 96<<10)...), '"', '\n')
		srv, sent := endlessFarm(t, page)
		f := &evidence.Farm{URL: srv.URL, MaxBytes: 1 << 20}
		pieces, errs := askAll(f)
		for i, err := range errs {
			if !errors.Is(err, evidence.ErrTooMuch) {
				t.Errorf("question %d: %v, want %v", i, err, evidence.ErrTooMuch)
			}
		}
		if got, max := sent.Load(), int64(1<<20+len(page)); got > max {
			t.Errorf("the farm sent %d bytes, want at most %d (the budget and a page)", got, max)
		}
		if pieces > (1<<20)/len(page) {
			t.Errorf("kept %d pieces, more than the budget holds", pieces)
		}
	})

	t.Run("pieces", func(t *testing.T) {
		page := bytes.Repeat([]byte("{}\n"), 1000)
		srv, _ := endlessFarm(t, page)
		f := &evidence.Farm{URL: srv.URL, MaxPieces: 5000}
		pieces, errs := askAll(f)
		for i, err := range errs {
			if !errors.Is(err, evidence.ErrTooMuch) {
				t.Errorf("question %d: %v, want %v", i, err, evidence.ErrTooMuch)
			}
		}
		if pieces > 5000 {
			t.Errorf("kept %d pieces from one farm, want at most 5000", pieces)
		}
	})
}

// TestSplitOversizedValue: a piece larger than MaxPiece is cut and copied,
// whether it is a line or the whole answer, so that it does not hold the
// page it came in.
func TestSplitOversizedValue(t *testing.T) {
	big := append(append([]byte(`"`), bytes.Repeat([]byte("a"), 3*evidence.MaxPiece)...), '"')
	for _, b := range [][]byte{big, append(append([]byte("{}\n"), big...), '\n')} {
		for _, pc := range evidence.Split("x", b) {
			if len(pc.Raw) > evidence.MaxPiece+1 {
				t.Errorf("Split() kept a piece of %d bytes, want at most %d", len(pc.Raw), evidence.MaxPiece+1)
			}
			if len(pc.Raw) > evidence.MaxPiece && cap(pc.Raw) > 2*evidence.MaxPiece {
				t.Errorf("Split() cut a piece to %d bytes, but it holds %d", len(pc.Raw), cap(pc.Raw))
			}
		}
	}
}
