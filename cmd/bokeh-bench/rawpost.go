package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawPoster sends the publishing loops' bulkupserts over one kept-alive connection, each
// request in one write, and reads only the answer's status and length. The request bytes
// are the Python client's (same headers, same body); net/http's client cost the load
// generator about as much CPU per update as the worker, which shares its CPU in the update
// scenario, so the measuring instrument disturbed what it measured.
type rawPoster struct {
	addr string
	head []byte // request line and headers up to the Content-Length value
	hdr  []byte
	conn net.Conn
	br   *bufio.Reader
}

// ioTimeout bounds one request and its answer.
const ioTimeout = 30 * time.Second

func newRawPoster(apiRoot, docid string) (*rawPoster, error) {
	u, err := url.Parse(apiRoot)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("raw poster needs an http:// API root, got %q", apiRoot)
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	head := "POST " + path + "bokeh/bb/" + docid + "/bulkupsert HTTP/1.1\r\nHost: " + u.Host +
		"\r\nBOKEHUSER: defaultuser\r\nBOKEHUSER-API-KEY: nokey\r\nContent-Type: application/json\r\nContent-Length: "
	return &rawPoster{addr: u.Host, head: []byte(head)}, nil
}

// post sends one bulkupsert and discards the answer, which must be 200.
func (p *rawPoster) post(body []byte) error {
	err := p.exchange(body)
	if err != nil && p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	return err
}

func (p *rawPoster) exchange(body []byte) error {
	if p.conn == nil {
		c, err := net.DialTimeout("tcp", p.addr, ioTimeout)
		if err != nil {
			return err
		}
		p.conn = c
		p.br = bufio.NewReaderSize(c, 16<<10)
	}
	if err := p.conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	p.hdr = strconv.AppendInt(append(p.hdr[:0], p.head...), int64(len(body)), 10)
	p.hdr = append(p.hdr, "\r\n\r\n"...)
	bufs := net.Buffers{p.hdr, body}
	if _, err := bufs.WriteTo(p.conn); err != nil {
		return err
	}
	line, err := p.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return fmt.Errorf("bulkupsert: bad status line %q", line)
	}
	status := string(line[9:12])
	length, closing := -1, false
	for {
		line, err := p.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return fmt.Errorf("bulkupsert: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			closing = true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return errors.New("bulkupsert: chunked answer (the API sends Content-Length)")
		}
	}
	if length < 0 {
		return errors.New("bulkupsert: answer without Content-Length")
	}
	if _, err := p.br.Discard(length); err != nil {
		return err
	}
	if closing {
		p.conn.Close()
		p.conn = nil
	}
	if status != "200" {
		return fmt.Errorf("bulkupsert: status %s", status)
	}
	return nil
}

func (p *rawPoster) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// rawPosters gives each publishing goroutine (by index) a connection of its own.
type rawPosters []*rawPoster

func newRawPosters(n int, apiRoot, docid string) (rawPosters, error) {
	out := make(rawPosters, n)
	for i := range out {
		p, err := newRawPoster(apiRoot, docid)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func (ps rawPosters) close() {
	for _, p := range ps {
		p.close()
	}
}
