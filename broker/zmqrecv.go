package broker

// pebbe/zmq4 receives a part into a fresh Go slice that it zeroes and then overwrites with
// the message (make + memcpy): for a 60 KB modelpush the zeroing is a large share of a
// worker's work (README, Performance). partReceiver takes the parts with C.GoBytes
// instead, which allocates without zeroing, and with fewer cgo calls.

/*
#cgo !windows pkg-config: libzmq
#include <zmq.h>
#include <errno.h>

// bokehRecvPart receives one part into msg (initialised here); it returns the part's size,
// or -1 with *err set, and whether more parts follow.
static int bokehRecvPart(void *sock, zmq_msg_t *msg, int flags, int *more, int *err) {
	zmq_msg_init(msg);
	int n = zmq_msg_recv(msg, sock, flags);
	if (n < 0) {
		*err = zmq_errno();
		zmq_msg_close(msg);
		return -1;
	}
	*more = zmq_msg_more(msg);
	return n;
}
*/
import "C"

import (
	"syscall"
	"unsafe"

	zmq "github.com/pebbe/zmq4"
)

// rawSocket is the libzmq socket behind s. pebbe/zmq4 does not export it; its Socket
// struct starts with it (v1.4.0, pinned by TestZMQ4LayoutIsPinned). sameSocket checks
// that before it is ever used, so a wrong layout falls back to the binding's receive.
func rawSocket(s *zmq.Socket) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(s)) }

// sameSocket reports whether rawSocket(s) really is s's libzmq socket: its type, read
// through libzmq directly, must match what the binding reports.
func sameSocket(s *zmq.Socket) bool {
	want, err := s.GetType()
	if err != nil {
		return false
	}
	raw := rawSocket(s)
	if raw == nil {
		return false
	}
	var typ C.int
	size := C.size_t(unsafe.Sizeof(typ))
	if C.zmq_getsockopt(raw, C.ZMQ_TYPE, unsafe.Pointer(&typ), &size) != 0 {
		return false
	}
	return zmq.Type(typ) == want
}

// partReceiver receives multipart messages from one socket (not safe for concurrent use,
// like the socket itself).
type partReceiver struct {
	sock  *zmq.Socket
	raw   unsafe.Pointer // nil: use the binding's RecvMessageBytes
	parts [][]byte
}

func newPartReceiver(s *zmq.Socket) *partReceiver {
	r := &partReceiver{sock: s}
	if sameSocket(s) {
		r.raw = rawSocket(s)
	}
	return r
}

// recv returns the parts of the next message; the slice is reused by the next call, the
// parts are not. Errors are zmq.Errno values, as the binding's.
func (r *partReceiver) recv(flags zmq.Flag) ([][]byte, error) {
	if r.raw == nil {
		return r.sock.RecvMessageBytes(flags)
	}
	r.parts = r.parts[:0]
	for {
		var msg C.zmq_msg_t
		var more, errno C.int
		n := C.bokehRecvPart(r.raw, &msg, C.int(flags), &more, &errno)
		if n < 0 {
			if syscall.Errno(errno) == syscall.EINTR {
				continue
			}
			return nil, zmq.Errno(errno)
		}
		var part []byte
		if n > 0 {
			part = C.GoBytes(C.zmq_msg_data(&msg), n)
		} else {
			part = []byte{}
		}
		C.zmq_msg_close(&msg)
		r.parts = append(r.parts, part)
		if more == 0 {
			return r.parts, nil
		}
	}
}
