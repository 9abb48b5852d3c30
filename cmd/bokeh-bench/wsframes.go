package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// frameSplitter cuts the byte stream a server sends a websocket client into messages, fed
// whatever one read returned. It keeps only what the benchmark looks at: the first
// headBytes of every message's payload and the payload of control frames. Server frames are
// never masked (RFC 6455 §5.1).
type frameSplitter struct {
	hdr     [14]byte // a frame header arriving in pieces
	hdrLen  int
	inFrame bool
	op      byte // opcode of the current frame
	fin     bool
	left    uint64 // payload bytes of the current frame still to come
	msgOp   byte   // opcode of the message the data frames belong to (0: none begun)
	head    []byte // first headBytes of the current message's payload
	control []byte // payload of the current control frame
}

const headBytes = 512

const (
	opContinuation = 0
	opText         = 1
	opBinary       = 2
	opClose        = 8
	opPing         = 9
	opPong         = 10
)

var errMaskedFrame = errors.New("websocket: server frame is masked")

// feed consumes p; onMessage gets the head of every complete data message, onControl the
// opcode and payload of every control frame (valid only during the call).
func (f *frameSplitter) feed(p []byte, onMessage func(head []byte), onControl func(op byte, payload []byte) error) error {
	for len(p) > 0 || (f.inFrame && f.left == 0) {
		if !f.inFrame {
			n, err := f.readHeader(p)
			if err != nil {
				return err
			}
			p = p[n:]
			if !f.inFrame {
				return nil // header incomplete: needs the next read
			}
		}
		k := min(f.left, uint64(len(p)))
		if f.op >= opClose {
			f.control = append(f.control, p[:k]...)
		} else if room := headBytes - len(f.head); room > 0 {
			f.head = append(f.head, p[:min(k, uint64(room))]...)
		}
		p, f.left = p[k:], f.left-k
		if f.left > 0 {
			return nil
		}
		f.inFrame = false
		switch {
		case f.op >= opClose:
			err := onControl(f.op, f.control)
			f.control = f.control[:0]
			if err != nil {
				return err
			}
		case f.fin:
			onMessage(f.head)
			f.head, f.msgOp = f.head[:0], 0
		}
	}
	return nil
}

// readHeader takes header bytes from p (keeping a partial header for later) and returns how
// many it used; f.inFrame tells whether the header is complete.
func (f *frameSplitter) readHeader(p []byte) (int, error) {
	used := 0
	need := 2
	for {
		if f.hdrLen >= 2 {
			if f.hdr[1]&0x80 != 0 {
				return used, errMaskedFrame
			}
			switch f.hdr[1] & 0x7f {
			case 126:
				need = 4
			case 127:
				need = 10
			}
		}
		if f.hdrLen >= need {
			break
		}
		if used == len(p) {
			return used, nil
		}
		c := min(need-f.hdrLen, len(p)-used)
		copy(f.hdr[f.hdrLen:], p[used:used+c])
		f.hdrLen += c
		used += c
	}
	h := f.hdr[:f.hdrLen]
	f.hdrLen = 0
	if h[0]&0x70 != 0 {
		return used, errors.New("websocket: reserved bits set (no extension was agreed)")
	}
	f.fin, f.op = h[0]&0x80 != 0, h[0]&0x0f
	switch n := h[1] & 0x7f; n {
	case 126:
		f.left = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		f.left = binary.BigEndian.Uint64(h[2:])
	default:
		f.left = uint64(n)
	}
	switch {
	case f.op >= opClose:
		if f.op > opPong || !f.fin || f.left > 125 {
			return used, fmt.Errorf("websocket: bad control frame (opcode %d, %d bytes)", f.op, f.left)
		}
	case f.op == opContinuation:
		if f.msgOp == 0 {
			return used, errors.New("websocket: continuation frame without a message")
		}
	case f.op == opText || f.op == opBinary:
		if f.msgOp != 0 {
			return used, errors.New("websocket: new message inside a fragmented one")
		}
		f.msgOp = f.op
	default:
		return used, fmt.Errorf("websocket: reserved opcode %d", f.op)
	}
	f.inFrame = true
	return used, nil
}
