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
