package scheduler

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// countingStore counts the reads of a status; it has no builders.
type countingStore struct {
	Store
	mu    sync.Mutex
	reads int
}

func (c *countingStore) Builders(context.Context) ([]BuilderRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	return nil, nil
}

func (c *countingStore) Sources(context.Context, Page) ([]SourceRecord, string, error) {
	return nil, "", nil
}

func (c *countingStore) Jobs(context.Context, JobState, Page) ([]JobRecord, string, error) {
	return nil, "", nil
}

// TestStatusReadOncePerSecond: however many ask GET /api/v1/status at
// once, the farm's status is read once per statusFresh.
func TestStatusReadOncePerSecond(t *testing.T) {
	now := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	var clock sync.Mutex
	st := &countingStore{}
	s := &Scheduler{cfg: Config{Threshold: 1, Now: func() time.Time { clock.Lock(); defer clock.Unlock(); return now }},
		st: st, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	get := func() {
		w := httptest.NewRecorder()
		if err := s.getStatus(w, httptest.NewRequest(http.MethodGet, "/api/v1/status", nil)); err != nil || w.Code != http.StatusOK {
			t.Errorf("GET /api/v1/status = %d, %v", w.Code, err)
		}
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); get() }()
	}
	wg.Wait()
	if st.reads != 1 {
		t.Errorf("50 requests at once read the status %d times, want 1", st.reads)
	}
	clock.Lock()
	now = now.Add(statusFresh)
	clock.Unlock()
	get()
	if st.reads != 2 {
		t.Errorf("a request %v later read the status %d times in all, want 2", statusFresh, st.reads)
	}
}
