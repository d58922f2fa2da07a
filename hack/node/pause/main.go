// The pod sandbox's process on the real node: it holds the pod's namespaces, reaps
// the zombies of a shared process namespace (it is PID 1 there), and exits on
// SIGINT or SIGTERM. Kubernetes' own pause is C in its repository, not a Go module;
// this does the same in a few lines, built static here (no registry to pull from).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
