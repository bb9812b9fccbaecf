package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the scheduler's Prometheus metrics, on a registry of its own
// so that several schedulers (in tests) do not collide.
type metrics struct {
	reg          *prometheus.Registry
	claims       *prometheus.CounterVec
	attestations *prometheus.CounterVec
	jobs         prometheus.Counter
	deadLetters  prometheus.Counter
	requests     *prometheus.CounterVec
	diffs        *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lantern_claims_total", Help: "Source claims ingested, by result (accepted, duplicate, refused).",
		}, []string{"result"}),
		attestations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lantern_attestations_total", Help: "Attestations from builders, by result (accepted, duplicate, refused).",
		}, []string{"result"}),
		jobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lantern_jobs_published_total", Help: "Rebuild jobs queued.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lantern_dead_letters_total", Help: "Jobs a builder's consumer gave up on after the last delivery.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lantern_api_requests_total", Help: "API requests, by route and status code.",
		}, []string{"route", "code"}),
		diffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lantern_diffs_total", Help: "Difference reports made with diffoscope, by result (done, failed).",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.claims, m.attestations, m.jobs, m.deadLetters, m.requests, m.diffs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// NameHolder is a Queue that holds the scheduler's name among the farm's
// schedulers (natsq.Queue, once the name is held): two schedulers of one
// name would split its consumers' messages, so a scheduler takes messages
// only while it holds its name, and /metrics shows it.
type NameHolder interface {
	// NameHeld reports whether the scheduler holds its name now, and
	// whether another scheduler took it from this one (which then takes
	// no messages until it is restarted).
	NameHeld() (held, taken bool)
}

// watchName adds the gauges of q's hold on the scheduler's name.
func (m *metrics) watchName(q NameHolder) {
	gauge := func(name, help string, v func() bool) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			if v() {
				return 1
			}
			return 0
		})
	}
	m.reg.MustRegister(
		gauge("lantern_scheduler_name_held", "1 while this scheduler holds its name and takes messages; 0 while it cannot confirm its hold (it waits) or lost it.",
			func() bool { held, _ := q.NameHeld(); return held }),
		gauge("lantern_scheduler_name_conflict", "1 once another scheduler took this scheduler's name: this one takes no messages until it is restarted (with another --scheduler-name, or after the other stops).",
			func() bool { _, taken := q.NameHeld(); return taken }),
	)
}
