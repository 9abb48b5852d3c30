//go:build !unix

package broker

import (
	"errors"
	"os"

	zmq "github.com/pebbe/zmq4"
)

// signalFile is only implemented for unix systems.
func signalFile(*zmq.Socket) (*os.File, error) {
	return nil, errors.New("waiting for ZMQ_FD is only implemented on unix systems")
}
