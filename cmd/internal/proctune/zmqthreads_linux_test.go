package proctune

import (
	"log/slog"
	"testing"

	zmq "github.com/pebbe/zmq4"
	"golang.org/x/sys/unix"
)

// customSlices reports whether the kernel keeps a custom slice for a SCHED_NORMAL thread
// (EEVDF, Linux 6.12+): it is tried on a thread of the test's own.
func customSlices(t *testing.T) bool {
	t.Helper()
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return false
	}
	old := *attr
	attr.Runtime = uint64(DefaultZMQThreadSlice.Nanoseconds())
	if unix.SchedSetAttr(0, attr, 0) != nil {
		return false
	}
	got, err := unix.SchedGetAttr(0, 0)
	unix.SchedSetAttr(0, &old, 0)
	return err == nil && got.Runtime == attr.Runtime
}

func TestZMQThreadsGetTheSlice(t *testing.T) {
	if !customSlices(t) {
		t.Skip("this kernel has no custom scheduler slices (Linux 6.12+ EEVDF) or refuses sched_setattr: nothing to test")
	}
	sock, err := zmq.NewSocket(zmq.PUB)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	ZMQThreads(DefaultZMQThreadSlice, slog.New(slog.DiscardHandler))
	tids, err := ioThreads()
	if err != nil || len(tids) == 0 {
		t.Fatalf("ZeroMQ I/O threads: %v %v", tids, err)
	}
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			t.Fatal(err)
		}
		if attr.Runtime != uint64(DefaultZMQThreadSlice.Nanoseconds()) {
			t.Errorf("thread %d: slice %d ns, want %v", tid, attr.Runtime, DefaultZMQThreadSlice)
		}
		if attr.Policy != unix.SCHED_NORMAL || attr.Nice != 0 {
			t.Errorf("thread %d: policy %d nice %d changed", tid, attr.Policy, attr.Nice)
		}
	}
}
