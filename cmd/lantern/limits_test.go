package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/scheduler"
)

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want byteSize
		str  string
	}{
		{"1024", 1024, "1KiB"}, {"1GiB", 1 << 30, "1GiB"}, {"512MiB", 512 << 20, "512MiB"}, {"2G", 2 << 30, "2GiB"},
		{"64K", 64 << 10, "64KiB"}, {"-1", -1, "-1"}, {"1000", 1000, "1000"}, {"3 MiB", 3 << 20, "3MiB"},
	} {
		var b byteSize
		if err := b.Set(tc.in); err != nil || b != tc.want || b.String() != tc.str {
			t.Errorf("Set(%q) = %v, %d (%s); want %d (%s)", tc.in, err, b, b, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", "GiB", "-2", "-1GiB", "1.5GiB", "1PiB", "9999999999999GiB", "lots"} {
		var b byteSize
		if err := b.Set(bad); err == nil {
			t.Errorf("Set(%q) = nil, want an error", bad)
		}
	}
}

// TestLimitFlags: the flags' defaults are the packages' defaults, the
// environment gives defaults, and a limit out of range is a command-line
// error.
func TestLimitFlags(t *testing.T) {
	parse := func(args ...string) (*limitSettings, error) {
		f := flag.NewFlagSet("scheduler", flag.ContinueOnError)
		f.SetOutput(io.Discard)
		l := limitFlags(f)
		if err := f.Parse(args); err != nil {
			return nil, err
		}
		return l, l.check()
	}
	l, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	var sc scheduler.Config
	l.scheduler(&sc)
	if sc.ClaimsPerMinute != scheduler.DefaultClaimsPerMinute || sc.OutputRetention != scheduler.DefaultOutputRetention {
		t.Errorf("defaults: %d claims a minute, retention %v", sc.ClaimsPerMinute, sc.OutputRetention)
	}
	if hs := l.http.Server(nil); hs.ReadTimeout != scheduler.DefaultReadTimeout || hs.WriteTimeout != scheduler.DefaultWriteTimeout || hs.IdleTimeout != scheduler.DefaultIdleTimeout || hs.ReadHeaderTimeout != scheduler.DefaultReadHeaderTimeout || hs.MaxHeaderBytes != scheduler.DefaultMaxHeaderBytes {
		t.Errorf("default HTTP server: %+v", hs)
	}
	l, err = parse("--claims-per-minute", "0", "--stream-max-bytes", "4GiB", "--builder-bucket-max-bytes", "-1", "--output-retention-days", "3")
	if err != nil {
		t.Fatal(err)
	}
	l.scheduler(&sc)
	q := l.queue(natsq.Config{})
	if sc.ClaimsPerMinute >= 0 || sc.OutputRetention != 3*24*time.Hour || q.StreamMaxBytes != 4<<30 || q.BuilderBucketMaxBytes != -1 {
		t.Errorf("set: %d claims a minute, retention %v, streams %d, builder buckets %d", sc.ClaimsPerMinute, sc.OutputRetention, q.StreamMaxBytes, q.BuilderBucketMaxBytes)
	}
	t.Setenv("LANTERN_HTTP_READ_TIMEOUT", "5s")
	if l, err := parse(); err != nil || l.http.ReadTimeout != 5*time.Second {
		t.Errorf("$LANTERN_HTTP_READ_TIMEOUT=5s: %v, read timeout %v", err, l.http.ReadTimeout)
	}
	t.Setenv("LANTERN_HTTP_READ_TIMEOUT", "soon")
	if _, err := parse(); err == nil {
		t.Errorf("$LANTERN_HTTP_READ_TIMEOUT=soon: no error")
	}
	t.Setenv("LANTERN_HTTP_READ_TIMEOUT", "")
	for _, args := range [][]string{
		{"--http-read-timeout", "0s"}, {"--claims-per-minute", "-5"}, {"--stream-max-bytes", "0"},
		{"--output-retention-days", "0"}, {"--http-max-header-bytes", "10"}, {"--stream-max-age", "-1h"},
	} {
		if _, err := parse(args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
