package main

import (
	"strings"
	"testing"
)

// TestClusterFlags: the replicas and the embedded server's cluster are
// checked before anything starts, and a cluster's route password goes into
// the configuration printed for an operator's own nats-server.
func TestClusterFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"scheduler", "--nats-replicas", "0"}, "--nats-replicas 0: want 1 to 5"},
		{[]string{"scheduler", "--nats-replicas", "6"}, "--nats-replicas 6: want 1 to 5"},
		{[]string{"up", "--nats-replicas", "7"}, "--nats-replicas 7: want 1 to 5"},
		{[]string{"scheduler", "--nats", "nats://127.0.0.1:4222", "--nats-cluster", "127.0.0.1:6222", "--nats-routes", "nats://127.0.0.1:6222"}, "configure the embedded NATS server"},
		{[]string{"scheduler", "--nats-routes", "nats://127.0.0.1:6222"}, "need --nats-cluster"},
		{[]string{"up", "--nats-cluster", "127.0.0.1:6222"}, "--nats-cluster needs --nats-routes"},
		{[]string{"scheduler", "--nats-cluster", "127.0.0.1:6222", "--nats-routes", "nats://u:p@127.0.0.1:6222"}, "carries no user or password"},
	} {
		runLantern(t, dir, nil, append(c.args, "--data", dir)...).fails(t, strings.Join(c.args, " "), 2, c.want)
	}
	r := runLantern(t, dir, nil, "scheduler", "--data", dir, "--print-nats-config", "--nats-cluster", "127.0.0.1:6222",
		"--nats-routes", "nats://127.0.0.1:6222,nats://127.0.0.1:6223", "--nats-name", "n1").must(t, "print a cluster node's config")
	// nats-server refuses a clustered JetStream without server_name.
	for _, want := range []string{`server_name: "n1"`, "cluster {", `listen: "127.0.0.1:6222"`, "authorization {", `user: "lantern-route"`, "@127.0.0.1:6223"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--print-nats-config with a cluster: no %q in\n%s", want, r.stdout)
		}
	}
	// Routes carry every account's messages, and the route secret opens
	// them: a configuration printed for routes beyond loopback without TLS
	// would send that secret, and then the whole bus, in the clear, as the
	// embedded server refuses to.
	for _, args := range [][]string{
		{"--nats-cluster", "10.0.0.2:6222", "--nats-routes", "nats://10.0.0.1:6222,nats://10.0.0.2:6222"},
		{"--nats-cluster", "0.0.0.0:6222", "--nats-routes", "nats://lantern-nats-0.lantern-nats:6222"},
		{"--nats-cluster", "127.0.0.1:6222", "--nats-routes", "nats://127.0.0.1:6222,nats://192.0.2.7:6222"},
	} {
		r := runLantern(t, dir, nil, append([]string{"scheduler", "--data", dir, "--print-nats-config"}, args...)...)
		r.fails(t, "print a plain route beyond loopback "+strings.Join(args, " "), 2, "--nats-cluster-ca")
		if strings.Contains(r.stdout, "password") {
			t.Errorf("--print-nats-config %s printed the route secret:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
	r = runLantern(t, dir, nil, "scheduler", "--data", dir, "--print-nats-config", "--nats-cluster", "10.0.0.2:6222",
		"--nats-routes", "nats://10.0.0.1:6222,nats://10.0.0.2:6222", "--nats-name", "n2",
		"--nats-cluster-ca", "/etc/nats/cluster-ca.pem", "--nats-tls-cert", "/etc/nats/n2.pem", "--nats-tls-key", "/etc/nats/n2-key.pem").must(t, "print a node's config with routes over TLS")
	for _, want := range []string{`ca_file: "/etc/nats/cluster-ca.pem"`, `cert_file: "/etc/nats/n2.pem"`, `key_file: "/etc/nats/n2-key.pem"`, "verify: true"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--print-nats-config with routes over TLS: no %q in\n%s", want, r.stdout)
		}
	}
	for _, h := range []string{"scheduler", "up"} {
		r := runLantern(t, dir, nil, h, "--help").must(t, h+" --help")
		for _, f := range []string{"-nats-replicas", "-nats-cluster", "-nats-routes", "-nats-name", "-nats-cluster-ca"} {
			if !strings.Contains(r.stdout, f) {
				t.Errorf("%s --help does not show %s", h, f)
			}
		}
	}
}
