// Command netprobe runs inside a BuildKit sandbox in worker/buildkit's
// tests, on a scratch root with nothing but itself. Given an address and a
// directory, it dials the address and writes what happened to DIR/result
// ("connected", or "error: " and why), what the sandbox looks like to
// DIR/sandbox, and the trace context BuildKit put in its environment
// (TRACEPARENT, TRACESTATE), which differs from run to run, to DIR/trace.
// Given "sleep" and a word, it sleeps until it is killed.
package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: netprobe HOST:PORT DIR | netprobe sleep WORD")
		os.Exit(2)
	}
	if os.Args[1] == "sleep" {
		for {
			time.Sleep(time.Hour)
		}
	}
	addr, dir := os.Args[1], os.Args[2]

	result := "connected"
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
		result = "error: " + err.Error()
	} else {
		c.Close()
	}
	write(filepath.Join(dir, "result"), result+"\n")

	host, err := os.Hostname()
	if err != nil {
		host = "error: " + err.Error()
	}
	wd, err := os.Getwd()
	if err != nil {
		wd = "error: " + err.Error()
	}
	var env, trace []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TRACEPARENT=") || strings.HasPrefix(kv, "TRACESTATE=") {
			trace = append(trace, kv)
		} else {
			env = append(env, kv)
		}
	}
	slices.Sort(env)
	slices.Sort(trace)
	write(filepath.Join(dir, "trace"), strings.Join(trace, "\n"))
	var devs []string
	if des, err := os.ReadDir("/dev"); err != nil {
		devs = append(devs, "error: "+err.Error())
	} else {
		for _, de := range des {
			devs = append(devs, de.Name())
		}
	}
	write(filepath.Join(dir, "sandbox"), fmt.Sprintf("hostname=%s\nuid=%d\ngid=%d\nwd=%s\n/dev: %s\nenv:\n%s\n",
		host, os.Getuid(), os.Getgid(), wd, strings.Join(devs, " "), strings.Join(env, "\n")))
}

func write(name, s string) {
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "netprobe:", err)
		os.Exit(1)
	}
}
