package natsserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/natsq/natsauth"
	"github.com/lanternfarm/lantern/natsq/natsserver"
)

// routeConnect speaks to a cluster port as a route would, with user and
// pass, and returns the server's first answer to CONNECT and PING.
func routeConnect(t *testing.T, addr, user, pass string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, patience)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(patience))
	r := bufio.NewReader(c)
	info, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(info, "INFO ") {
		return fmt.Sprintf("no INFO: %q, %v", info, err)
	}
	connect, _ := json.Marshal(map[string]any{"user": user, "pass": pass, "name": "NSTRANGER", "cluster": "lantern", "headers": true, "verbose": false, "pedantic": false})
	if _, err := c.Write([]byte("CONNECT " + string(connect) + "\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	return routeAnswer(r)
}

// TestRouteNeedsTheFarmsSecret: a node of a cluster takes routes only from
// servers that know the farm's route password: a stranger connecting to
// its cluster port without it, with a wrong one, or with another farm's, is
// refused; with the farm's it is a route.
func TestRouteNeedsTheFarmsSecret(t *testing.T) {
	dir := t.TempDir()
	auth, err := natsauth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := natsauth.Open(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cluster := ln.Addr().String()
	ln.Close()
	start(t, dir, natsserver.Options{Auth: auth, Name: "n0", Cluster: cluster, Routes: []string{"nats://" + cluster}})
	pw, err := auth.RoutePassword()
	if err != nil {
		t.Fatal(err)
	}
	otherPW, err := other.RoutePassword()
	if err != nil {
		t.Fatal(err)
	}
	if pw == otherPW {
		t.Fatal("two farms have the same route password")
	}
	for name, c := range map[string]struct{ user, pass string }{
		"no password":           {"", ""},
		"wrong password":        {natsauth.RouteUser, strings.Repeat("0", 64)},
		"another farm's":        {natsauth.RouteUser, otherPW},
		"the password, no user": {"", pw},
	} {
		got := routeConnect(t, cluster, c.user, c.pass)
		t.Logf("%s: %s", name, got)
		if !strings.Contains(got, "Authorization Violation") {
			t.Errorf("%s: a stranger's route got %q, want it refused", name, got)
		}
	}
	if got := routeConnect(t, cluster, natsauth.RouteUser, pw); got != "PONG" {
		t.Errorf("with the farm's route password: %q, want PONG", got)
	}
}

// TestClusterBeyondLoopbackNeedsTLS: routes carry everything; beyond
// loopback a node refuses to start without TLS for them, and a route URL
// may not carry credentials of its own.
func TestClusterBeyondLoopbackNeedsTLS(t *testing.T) {
	dir := t.TempDir()
	auth, err := natsauth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]natsserver.Options{
		"cluster on every address": {Cluster: "0.0.0.0:6222", Routes: []string{"nats://127.0.0.1:6222"}},
		"cluster on a LAN address": {Cluster: "10.1.2.3:6222", Routes: []string{"nats://127.0.0.1:6222"}},
		"route to a LAN address":   {Cluster: "127.0.0.1:6222", Routes: []string{"nats://10.1.2.3:6222"}},
		"routes without a cluster": {Routes: []string{"nats://127.0.0.1:6222"}},
		"cluster CA without cert":  {Cluster: "127.0.0.1:6222", Routes: []string{"nats://127.0.0.1:6222"}, ClusterCA: "ca.pem"},
		"cluster without routes":   {Cluster: "127.0.0.1:6222"},
	} {
		opts.Dir, opts.Auth, opts.Port = filepath.Join(dir, "n"), auth, -1
		ctx, cancel := context.WithTimeout(t.Context(), patience)
		s, err := natsserver.Start(ctx, opts)
		cancel()
		if err == nil {
			s.Shutdown()
			t.Errorf("%s: Start() = nil, want it refused", name)
		}
	}
	if _, err := natsauth.RouteURL("nats://someone:secret@127.0.0.1:6222", strings.Repeat("a", 64)); err == nil {
		t.Error("RouteURL with credentials of its own: nil, want an error")
	}
	u, err := natsauth.RouteURL("127.0.0.1:"+strconv.Itoa(6222), strings.Repeat("a", 64))
	if err != nil || u != "nats://"+natsauth.RouteUser+":"+strings.Repeat("a", 64)+"@127.0.0.1:6222" {
		t.Errorf("RouteURL = %q, %v", u, err)
	}
}

// routeAnswer reads, after a route's CONNECT and PING, the server's answer:
// -ERR or PONG, or how the connection ended.
func routeAnswer(r *bufio.Reader) string {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "closed: " + err.Error()
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "-ERR") || line == "PONG" {
			return line
		}
	}
}
