package proctune

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	zmq "github.com/pebbe/zmq4"
	"golang.org/x/sys/unix"
)

// DefaultZMQThreadSlice is the scheduler time slice (Linux 6.12+ EEVDF custom slice) given
// to ZeroMQ's I/O threads. They run a few microseconds per message, but in a process whose
// handler thread keeps its CPU busy a woken I/O thread waits for the end of that thread's
// default slice, which showed as push-latency tails (README, Performance). A short slice
// gives the woken thread an earlier deadline, so it runs at once; nice level and policy
// stay as they were.
const DefaultZMQThreadSlice = 100 * time.Microsecond

// ZMQThreads gives the process's ZeroMQ I/O threads the scheduler slice; call it once the
// first ZeroMQ socket exists (the threads start with it). It may wait up to
// ioThreadNameWait for them. Failure (an old kernel, a sandbox refusing sched_setattr)
// only costs latency under load, so it is logged, not returned.
func ZMQThreads(slice time.Duration, log *slog.Logger) {
	tids, err := awaitIOThreads()
	if err == nil && len(tids) == 0 {
		err = fmt.Errorf("no ZeroMQ I/O thread found")
	}
	for _, tid := range tids {
		if err = setSlice(tid, slice); err != nil {
			break
		}
	}
	if err != nil {
		log.Debug("ZeroMQ I/O threads keep the default scheduler slice", "err", err)
		return
	}
	log.Debug("ZeroMQ I/O threads get a short scheduler slice", "threads", len(tids), "slice", slice)
}

// ioThreadNameWait bounds how long the first socket's creation waits for the context's I/O
// threads to carry their names: libzmq names a thread from inside it, after it has started,
// so right after the first socket is made a thread may still have the program's name.
const ioThreadNameWait = 500 * time.Millisecond

// awaitIOThreads returns the I/O threads once as many as the context has are named (or
// what is there after ioThreadNameWait).
func awaitIOThreads() ([]int, error) {
	want, err := zmq.GetIoThreads()
	if err != nil || want < 1 {
		want = 1
	}
	deadline := time.Now().Add(ioThreadNameWait)
	for {
		tids, err := ioThreads()
		if err != nil || len(tids) >= want || time.Now().After(deadline) {
			return tids, err
		}
		time.Sleep(time.Millisecond)
	}
}

// ioThreads lists the thread ids of this process's ZeroMQ I/O threads (libzmq names them
// "ZMQbg/IO/<n>").
func ioThreads() ([]int, error) {
	comms, err := filepath.Glob("/proc/self/task/*/comm")
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, path := range comms {
		name, err := os.ReadFile(path)
		if err != nil || !strings.HasPrefix(string(name), "ZMQbg/IO/") {
			continue
		}
		if tid, err := strconv.Atoi(filepath.Base(filepath.Dir(path))); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

func setSlice(tid int, slice time.Duration) error {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return fmt.Errorf("sched_getattr %d: %w", tid, err)
	}
	attr.Runtime = uint64(slice.Nanoseconds())
	if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
		return fmt.Errorf("sched_setattr %d: %w", tid, err)
	}
	return nil
}
