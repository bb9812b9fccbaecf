package natstest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// WatchPermissions returns a logger that passes log's records on and fails
// t, when it ends, if any connection logged a permissions violation: the
// farm's NATS server refused something a worker or the scheduler did,
// under its role. (A refused login, as a revoked user's, is not one.)
func WatchPermissions(t testing.TB, log *slog.Logger) *slog.Logger {
	w := &violations{}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, v := range w.seen {
			t.Errorf("permissions violation on the bus: %s", v)
		}
	})
	return slog.New(&violationHandler{Handler: log.Handler(), v: w})
}

type violations struct {
	mu   sync.Mutex
	seen []string
}

type violationHandler struct {
	slog.Handler
	v *violations
}

func (h *violationHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *violationHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	if strings.Contains(strings.ToLower(b.String()), "permissions violation") {
		h.v.mu.Lock()
		h.v.seen = append(h.v.seen, b.String())
		h.v.mu.Unlock()
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *violationHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &violationHandler{Handler: h.Handler.WithAttrs(as), v: h.v}
}

func (h *violationHandler) WithGroup(name string) slog.Handler {
	return &violationHandler{Handler: h.Handler.WithGroup(name), v: h.v}
}
