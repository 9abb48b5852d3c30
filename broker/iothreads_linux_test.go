package broker

import (
	"testing"

	zmq "github.com/pebbe/zmq4"
	"golang.org/x/sys/unix"
)

func TestIOThreadsGetTheShortSlice(t *testing.T) {
	sock, err := newSocket(zmq.PUB, options{log: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	tids, err := ioThreads()
	if err != nil || len(tids) == 0 {
		t.Fatalf("ZeroMQ I/O threads: %v %v", tids, err)
	}
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			t.Fatal(err)
		}
		if attr.Runtime != uint64(IOThreadSlice.Nanoseconds()) {
			t.Errorf("thread %d: slice %d ns, want %v", tid, attr.Runtime, IOThreadSlice)
		}
		if attr.Policy != unix.SCHED_NORMAL || attr.Nice != 0 {
			t.Errorf("thread %d: policy %d nice %d changed", tid, attr.Policy, attr.Nice)
		}
	}
}
