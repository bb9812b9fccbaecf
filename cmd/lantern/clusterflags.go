package main

import (
	"flag"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/lanternfarm/lantern/natsq/natsauth"
	"github.com/lanternfarm/lantern/natsq/natsserver"
)

// clusterSetup is how a farm's NATS is replicated: the replicas of its
// streams and buckets, and, for the embedded server, the cluster it is a
// node of.
type clusterSetup struct {
	replicas int
	// The embedded server as a node of a cluster: its cluster address,
	// the routes to the nodes, its name, and the CA of the nodes'
	// certificates (routes over TLS).
	cluster, routes, name, ca string
}

// clusterFlags are the flags of the commands that run a scheduler.
func clusterFlags(f *flag.FlagSet) *clusterSetup {
	var c clusterSetup
	replicas := 1
	if v, err := strconv.Atoi(os.Getenv("LANTERN_NATS_REPLICAS")); err == nil {
		replicas = v
	}
	f.IntVar(&c.replicas, "nats-replicas", replicas, "`N` replicas of every stream and bucket (1 to 5; default $LANTERN_NATS_REPLICAS or 1): on a NATS cluster of 3 or more servers, 3")
	f.StringVar(&c.cluster, "nats-cluster", os.Getenv("LANTERN_NATS_CLUSTER"), "`HOST:PORT` the embedded NATS server listens on for routes, as one node of a cluster with JetStream clustered (default $LANTERN_NATS_CLUSTER; empty: no cluster). Every node runs on a copy of DATA/nats-auth, whose route.secret authenticates the routes")
	f.StringVar(&c.routes, "nats-routes", os.Getenv("LANTERN_NATS_ROUTES"), "`URLS` of the cluster addresses of the nodes, nats://h1:p1,nats://h2:p2 (this node's own may be among them; default $LANTERN_NATS_ROUTES)")
	f.StringVar(&c.name, "nats-name", os.Getenv("LANTERN_NATS_NAME"), "`NAME` of the embedded NATS server, unique in its cluster (default $LANTERN_NATS_NAME, else this machine's host name and the cluster port)")
	f.StringVar(&c.ca, "nats-cluster-ca", os.Getenv("LANTERN_NATS_CLUSTER_CA"), "CA certificate `FILE` that every node's certificate (--nats-tls-cert, for server and client authentication) is signed by: routes then speak TLS, each end verifying the other; required for a cluster beyond loopback")
	return &c
}

// check checks the flags; external is whether the farm runs on an
// operator's own NATS (--nats).
func (c *clusterSetup) check(external bool) error {
	if c.replicas < 1 || c.replicas > 5 {
		return usagef("--nats-replicas %d: want 1 to 5 (3 on a cluster of three servers)", c.replicas)
	}
	if external && (c.cluster != "" || c.routes != "" || c.ca != "") {
		return usagef("--nats-cluster, --nats-routes and --nats-cluster-ca configure the embedded NATS server; with --nats, configure your nats-server's cluster (--print-nats-config prints a node's configuration)")
	}
	if c.cluster == "" && (c.routes != "" || c.ca != "") {
		return usagef("--nats-routes and --nats-cluster-ca need --nats-cluster HOST:PORT, this node's cluster address")
	}
	if c.cluster != "" && c.routes == "" {
		return usagef("--nats-cluster needs --nats-routes nats://h1:p1,nats://h2:p2: the cluster addresses of the nodes")
	}
	for _, r := range c.routeList() {
		if _, err := natsauth.RouteURL(r, strings.Repeat("x", 32)); err != nil {
			return usagef("--nats-routes: %v", err)
		}
	}
	return nil
}

func (c *clusterSetup) routeList() []string {
	var out []string
	for _, r := range strings.Split(c.routes, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// checkPlainRoutes refuses a cluster with routes beyond loopback and no
// --nats-cluster-ca: there the routes need TLS (natsq/natsserver refuses
// them for the embedded server; this is for a printed configuration).
func (c *clusterSetup) checkPlainRoutes() error {
	if c.cluster == "" || c.ca != "" {
		return nil
	}
	hosts := []string{c.cluster}
	for _, r := range c.routeList() {
		if _, rest, ok := strings.Cut(r, "://"); ok {
			r = rest
		}
		hosts = append(hosts, r)
	}
	for _, h := range hosts {
		host, _, err := net.SplitHostPort(h)
		if err != nil || !natsserver.IsLoopback(host) {
			return usagef("%s is beyond loopback: routes there carry the farm's route secret and every message, so they need TLS; give the cluster's CA (--nats-cluster-ca) and this node's certificate and key signed by it (--nats-tls-cert, --nats-tls-key)", h)
		}
	}
	return nil
}

// apply sets the embedded server's cluster options.
func (c *clusterSetup) apply(o *natsserver.Options) {
	o.Cluster, o.Routes, o.Name, o.ClusterCA = c.cluster, c.routeList(), c.name, c.ca
}
