package worker

import "github.com/prometheus/client_golang/prometheus"

// metrics are the worker's Prometheus metrics, on a registry of its own so
// that several workers in one process (lantern up, tests) do not collide.
type metrics struct {
	reg  *prometheus.Registry
	jobs *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lantern_worker_jobs_total",
			Help: "Jobs taken, by result: answered (a signed rebuild or failure), handed-back (the infrastructure failed), refused (no source claim this builder accepts, or not what its claim says).",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.jobs)
	for _, r := range []string{"answered", "handed-back", "refused"} {
		m.jobs.WithLabelValues(r)
	}
	return m
}
