// Command pause holds a network namespace for the Lantern image's
// containers, as Kubernetes' pause container does for a pod: it waits for
// SIGTERM or SIGINT and exits 0. In deploy/compose every service joins its
// namespace, so a NATS node or the scheduler can restart without taking
// the others' loopback with it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
