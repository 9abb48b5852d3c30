//go:build unix

package broker

import (
	"os"
	"syscall"

	zmq "github.com/pebbe/zmq4"
)

// signalFile returns a duplicate of sock's ZMQ_FD as a file in Go's network poller, so a
// goroutine can wait for it without holding an OS thread. Closing it leaves the socket's
// own descriptor alone.
func signalFile(sock *zmq.Socket) (*os.File, error) {
	fd, err := sock.GetFd()
	if err != nil {
		return nil, err
	}
	syscall.ForkLock.RLock()
	dup, err := syscall.Dup(fd)
	if err == nil {
		syscall.CloseOnExec(dup)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, os.NewSyscallError("dup", err)
	}
	// ZeroMQ made its signaller non-blocking already (the flag is shared by duplicates);
	// os.NewFile puts only non-blocking descriptors in the poller.
	if err := syscall.SetNonblock(dup, true); err != nil {
		syscall.Close(dup)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	return os.NewFile(uintptr(dup), "zmq-signal"), nil
}
