//go:build !linux

package buildkit

import (
	"os"
	"syscall"
)

// buildkitd with the OCI worker runs on Linux only; elsewhere StartDaemon's
// child would fail to start its worker, and these keep the package building
// for a worker that talks to a remote BuildKit.

func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) { p.Kill() }

func kill(p *os.Process) { p.Kill() }

func unmountUnder(string) error { return nil }

func killContainers(runc, dir string) {}

func removeContainers(runc, dir string) {}
