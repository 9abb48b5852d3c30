package applet

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The wire between bokeh-server and the host is a pair of pipes: the host reads requests
// on its fd 3 and writes replies on its fd 4, leaving stdout and stderr to the script.
// A message is one header line of strict JSON that includes "payload": N, followed by
// exactly N payload bytes. Payloads are bokeh JSON (models, which may hold the bare NaN and
// Infinity tokens bokeh writes) or a raw HTTP body, so they are never parsed as part of the
// header. Requests carry an "id"; replies carry the same id and may come in any order.

// Limits of the wire: a header line is small; a payload is at most a document's models.
const (
	maxHeaderBytes  = 1 << 20
	maxPayloadBytes = 256 << 20
)

// frameWriter writes messages; the caller serialises calls.
type frameWriter struct {
	w *bufio.Writer
}

func newFrameWriter(w io.Writer) *frameWriter {
	return &frameWriter{w: bufio.NewWriterSize(w, 64<<10)}
}

// write sends head (a JSON object without "payload") and payload.
func (f *frameWriter) write(head map[string]any, payload []byte) error {
	head["payload"] = len(payload)
	line, err := json.Marshal(head)
	if err != nil {
		return fmt.Errorf("encode request header: %w", err)
	}
	if _, err := f.w.Write(append(line, '\n')); err != nil {
		return err
	}
	if _, err := f.w.Write(payload); err != nil {
		return err
	}
	return f.w.Flush()
}

// frameReader reads messages.
type frameReader struct {
	r *bufio.Reader
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// frame is one message: the raw header line and the payload.
type frame struct {
	head    []byte
	payload []byte
}

// read returns the next message; io.EOF when the host closed its end between messages.
func (f *frameReader) read() (frame, error) {
	var line []byte
	for {
		chunk, err := f.r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) && len(line) < maxHeaderBytes {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return frame{}, io.EOF
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return frame{}, fmt.Errorf("reply header longer than %d bytes", maxHeaderBytes)
		}
		return frame{}, fmt.Errorf("read reply header: %w", err)
	}
	var size struct {
		Payload json.Number `json:"payload"`
	}
	if err := json.Unmarshal(line, &size); err != nil {
		return frame{}, fmt.Errorf("reply header is not JSON (%w): %.200q", err, line)
	}
	n, err := strconv.Atoi(size.Payload.String())
	if err != nil || n < 0 || n > maxPayloadBytes {
		return frame{}, fmt.Errorf("reply header: bad payload size %q", size.Payload)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(f.r, payload); err != nil {
		return frame{}, fmt.Errorf("read reply payload of %d bytes: %w", n, err)
	}
	return frame{head: line, payload: payload}, nil
}
