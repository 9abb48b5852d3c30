package main

import (
	"context"
	"log/slog"
	"strconv"
	"time"
)

// parentEnv, when set (to the parent's pid), makes the worker exit once its parent is gone.
// The parent also sets Pdeathsig; polling covers what that misses (a parent thread, not
// process, exiting, or platforms without it).
const (
	parentEnv          = "BOKEH_WORKER_PARENT_PID"
	parentPollInterval = time.Second
)

// watchParent calls stop when the parent process changes (it died and the worker was
// re-parented), polling getppid.
func watchParent(ctx context.Context, want string, getppid func() int, interval time.Duration, log *slog.Logger, stop func()) {
	initial := getppid()
	if pid, err := strconv.Atoi(want); err == nil && pid != initial {
		log.Warn("parent process already gone; shutting down", "parent_pid", pid, "ppid", initial)
		stop()
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if ppid := getppid(); ppid != initial {
				log.Warn("parent process exited; shutting down", "parent_pid", initial, "ppid", ppid)
				stop()
				return
			}
		}
	}
}
