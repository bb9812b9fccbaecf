// Package natsserver runs a farm's NATS server inside a Lantern process
// (`lantern up`, `lantern scheduler` without --nats, and tests), with
// JetStream, the farm's identities (package natsq/natsauth) and, beyond
// loopback, TLS. It is a package of its own so that nothing but the
// scheduler's binary links a NATS server: a worker needs only a client.
//
// The server takes the same configuration that `lantern scheduler
// --print-nats-config` prints for an operator's own nats-server, so the
// embedded default and a real deployment differ only in who starts the
// process. It never accepts an anonymous client, on loopback either.
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/lanternfarm/lantern/natsq/natsauth"
)

// Options configure an embedded NATS server.
type Options struct {
	// Dir is where JetStream keeps its files (Dir/jetstream) and the
	// server the account JWTs it was sent (Dir/accounts). A server started
	// again on the same Dir has every stream, message and durable consumer
	// it had.
	Dir string
	// Host is the address clients connect to; default 127.0.0.1.
	Host string
	// Port is the client port; 0 means NATS's default (4222) and -1 a
	// random free port.
	Port int
	// Name is the server's name, shown to clients and in its logs; default
	// "lantern".
	Name string
	// MaxStore caps JetStream's file storage in bytes; 0 lets the server
	// choose from the free disk space.
	MaxStore int64
	// Auth are the farm's identities; required.
	Auth *natsauth.Farm
	// Revoked are the users revoked so far (user public key → when).
	Revoked map[string]time.Time
	// TLSCert and TLSKey are the server's certificate and key files. When
	// they are empty and Host is not a loopback address, the server makes
	// a CA and a certificate in Dir/tls on first start (see [EnsureTLS]).
	TLSCert, TLSKey string
	// TLSNames are more host names or addresses for a certificate the
	// server makes (Host, the machine's addresses and host name are in it
	// anyway).
	TLSNames []string
	// Cluster, if set, makes the server one node of a NATS cluster with
	// JetStream clustered: the address (host:port) it listens on for the
	// routes of the other nodes. Routes in and out authenticate with the
	// farm's route password (natsauth.Farm.RoutePassword), so every node
	// runs on a copy of the same identities. Beyond loopback, routes need
	// TLS: ClusterCA, TLSCert and TLSKey.
	Cluster string
	// ClusterName names the cluster; default "lantern".
	ClusterName string
	// Routes are the URLs of the other nodes' cluster addresses,
	// nats://host:port (the node's own may be among them).
	Routes []string
	// ClusterCA is the CA that every node's certificate (TLSCert) is
	// signed by, for both server and client authentication: routes then
	// speak TLS and each end verifies the other.
	ClusterCA string
	// Log receives the server's own log lines (debug and trace excluded);
	// nil discards them.
	Log *slog.Logger
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns     *server.Server
	caFile string
	tls    bool
}

// Start starts an embedded NATS server with JetStream on file storage
// under opts.Dir and returns when it accepts clients. It gives up when ctx
// ends or the server reports a fatal error (a port in use, an unusable
// Dir).
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("start nats server: Options.Dir is empty; set it to the directory for JetStream's files")
	}
	if opts.Auth == nil {
		return nil, errors.New("start nats server: Options.Auth is nil: a farm's NATS accepts only the farm's users")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if err := checkCluster(&opts); err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	if opts.Name == "" {
		opts.Name = "lantern"
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, errors.New("start nats server: a TLS certificate needs its key, and a key its certificate")
	}
	s := &Server{}
	if opts.TLSCert == "" && !IsLoopback(opts.Host) {
		files, err := EnsureTLS(filepath.Join(opts.Dir, "tls"), append([]string{opts.Host}, opts.TLSNames...))
		if err != nil {
			return nil, fmt.Errorf("start nats server: %w", err)
		}
		opts.TLSCert, opts.TLSKey, s.caFile = files.Cert, files.Key, files.CA
	}
	s.tls = opts.TLSCert != ""
	conf, err := opts.Auth.ServerConfig(natsauth.ServerConfig{
		Name: opts.Name, StoreDir: filepath.Join(opts.Dir, "jetstream"), ResolverDir: filepath.Join(opts.Dir, "accounts"),
		Revoked: opts.Revoked, TLSCert: opts.TLSCert, TLSKey: opts.TLSKey,
		Cluster: opts.Cluster, ClusterName: opts.ClusterName, Routes: opts.Routes, ClusterCA: opts.ClusterCA,
	})
	if err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	// Kept for people: the configuration this server runs with (JWTs are
	// public; a cluster's route password is in it, hence 0600).
	if err := os.WriteFile(filepath.Join(opts.Dir, "nats-server.conf"), []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	sopts := &server.Options{}
	if err := sopts.ProcessConfigString(conf); err != nil {
		return nil, fmt.Errorf("start nats server: its configuration: %w", err)
	}
	sopts.ServerName = opts.Name
	sopts.Host = opts.Host
	sopts.Port = opts.Port
	sopts.JetStreamMaxStore = opts.MaxStore
	// Signals belong to main, which shuts the server down in order.
	sopts.NoSigs = true
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	sl := &serverLog{log: log.With("part", "nats-server"), fatal: make(chan string, 1)}
	ns.SetLoggerV2(sl, false, false, false)
	go ns.Start()

	for !ns.ReadyForConnections(100 * time.Millisecond) {
		select {
		case msg := <-sl.fatal:
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("start nats server in %s: %s", opts.Dir, msg)
		case <-ctx.Done():
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("start nats server: %w", ctx.Err())
		default:
		}
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("start nats server in %s: JetStream is not enabled", opts.Dir)
	}
	s.ns = ns
	return s, nil
}

// checkCluster checks the cluster options and gives a node of a cluster
// a name of its own by default: this machine's host name and its cluster
// port.
func checkCluster(opts *Options) error {
	if opts.Cluster == "" {
		if len(opts.Routes) > 0 || opts.ClusterCA != "" {
			return errors.New("routes and a cluster CA need a cluster address (--nats-cluster HOST:PORT)")
		}
		return nil
	}
	if len(opts.Routes) == 0 {
		return errors.New("a node of a cluster needs the routes to the others (--nats-routes nats://HOST:PORT,...: their cluster addresses; this node's own may be among them)")
	}
	host, port, err := net.SplitHostPort(opts.Cluster)
	if err != nil {
		return fmt.Errorf("cluster address %q: %w; want HOST:PORT", opts.Cluster, err)
	}
	if opts.ClusterCA != "" && opts.TLSCert == "" {
		return errors.New("routes over TLS (a cluster CA) need the server's certificate and key (--nats-tls-cert, --nats-tls-key), signed by that CA for server and client authentication")
	}
	// Routes carry every message and the JetStream replication: beyond
	// loopback, only over TLS with both ends verified.
	plain := opts.ClusterCA == ""
	if plain && !IsLoopback(host) {
		return fmt.Errorf("cluster address %s is beyond loopback: routes there need TLS; give the cluster's CA (--nats-cluster-ca) and this node's certificate and key signed by it (--nats-tls-cert, --nats-tls-key)", opts.Cluster)
	}
	for _, r := range opts.Routes {
		u := strings.TrimSpace(r)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		h, _, err := net.SplitHostPort(strings.SplitN(u, "://", 2)[1])
		if err != nil {
			return fmt.Errorf("route %q: want nats://HOST:PORT", r)
		}
		if plain && !IsLoopback(h) {
			return fmt.Errorf("route %q is beyond loopback: routes there need TLS; give the cluster's CA (--nats-cluster-ca) and this node's certificate and key (--nats-tls-cert, --nats-tls-key)", r)
		}
	}
	if opts.Name == "" {
		hn, err := os.Hostname()
		if err != nil || hn == "" {
			hn = "lantern"
		}
		opts.Name = hn + "-" + port
	}
	return nil
}

// IsLoopback reports whether host (a name or an address) is this machine's
// loopback only, where the bus may run without TLS.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URL is the URL clients connect to, nats://host:port (tls://host:port
// with TLS), with the real port when Options.Port was -1.
func (s *Server) URL() string {
	u := s.ns.ClientURL()
	if s.tls {
		if rest, ok := strings.CutPrefix(u, "nats://"); ok {
			u = "tls://" + rest
		}
	}
	// A server on every address is reached on this machine by loopback,
	// which its certificate names.
	for _, everywhere := range []string{"//0.0.0.0:", "//[::]:"} {
		u = strings.Replace(u, everywhere, "//127.0.0.1:", 1)
	}
	return u
}

// CAFile is the CA certificate that the server's own certificate was made
// with, for clients to verify it; "" when the certificate was given or the
// server runs without TLS.
func (s *Server) CAFile() string { return s.caFile }

// Shutdown stops the server and waits until it has stopped and closed its
// files.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// serverLog adapts nats-server's logger to slog. Fatal errors are logged
// and handed to Start instead of exiting the process, which is what
// nats-server's own logger would do.
type serverLog struct {
	log   *slog.Logger
	fatal chan string
}

func (l *serverLog) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l *serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Tracef(string, ...any)           {}

func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "fatal", true)
	select {
	case l.fatal <- msg:
	default:
	}
}
