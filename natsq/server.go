package natsq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure an embedded NATS server.
type Options struct {
	// Dir is where JetStream keeps its files. A server started again on the
	// same Dir has every stream, message and durable consumer it had.
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
	// Log receives the server's own log lines (debug and trace excluded);
	// nil discards them.
	Log *slog.Logger
}

// Server is an embedded NATS server with JetStream, the queue of `lantern up`.
type Server struct {
	ns *server.Server
}

// StartServer starts an embedded NATS server with JetStream on file storage
// under opts.Dir and returns when it accepts clients. It gives up when ctx
// ends or the server reports a fatal error (a port in use, an unusable
// Dir).
func StartServer(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("start nats server: Options.Dir is empty; set it to the directory for JetStream's files")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Name == "" {
		opts.Name = "lantern"
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sopts := &server.Options{
		ServerName:        opts.Name,
		Host:              opts.Host,
		Port:              opts.Port,
		JetStream:         true,
		StoreDir:          opts.Dir,
		JetStreamMaxStore: opts.MaxStore,
		// Signals belong to main, which shuts the server down in order.
		NoSigs: true,
	}
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
	return &Server{ns: ns}, nil
}

// URL is the URL clients connect to, nats://host:port, with the real port
// when Options.Port was -1.
func (s *Server) URL() string { return s.ns.ClientURL() }

// Shutdown stops the server and waits until it has stopped and closed its
// files.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// serverLog adapts nats-server's logger to slog. Fatal errors are logged
// and handed to StartServer instead of exiting the process, which is what
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
