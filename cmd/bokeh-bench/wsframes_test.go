package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// gorillaServer answers one websocket: after the client's first message it runs write (with
// a small write buffer, so that long messages go out in several frames), and records the
// pongs it gets.
func gorillaServer(t *testing.T, write func(c *websocket.Conn) error) (url string, pongs <-chan string) {
	t.Helper()
	got := make(chan string, 16)
	up := websocket.Upgrader{WriteBufferSize: 256, CheckOrigin: func(*http.Request) bool { return true }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPongHandler(func(s string) error { got <- s; return nil })
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
		if err := write(c); err != nil {
			t.Errorf("server write: %v", err)
		}
		for { // keeps reading, for the pongs
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), got
}

// writeMessage sends one message, fragmented by gorilla's NextWriter when it is long.
func writeMessage(c *websocket.Conn, typ int, data []byte) error {
	w, err := c.NextWriter(typ)
	if err != nil {
		return err
	}
	for len(data) > 0 { // several writes: several frames when they overflow the buffer
		n := min(len(data), 1000)
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return w.Close()
}

func TestFrameSplitterReadsGorillaFramesInAnyChunks(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 600, 65535, 65536, 70000, 70000}
	var want []string
	url, _ := gorillaServer(t, func(c *websocket.Conn) error {
		for i, n := range sizes {
			msg := bytes.Repeat([]byte{byte('a' + i)}, n)
			typ := websocket.TextMessage
			if i%2 == 1 {
				typ = websocket.BinaryMessage
			}
			// Single frames (WriteMessage) and fragmented messages (NextWriter) alike.
			write := c.WriteMessage
			if i%3 == 2 {
				write = func(typ int, msg []byte) error { return writeMessage(c, typ, msg) }
			}
			if err := write(typ, msg); err != nil {
				return err
			}
			if i == 3 {
				if err := c.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
					return err
				}
			}
		}
		err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second))
		c.Close() // the end of the stream the test reads
		return err
	})
	for i, n := range sizes {
		want = append(want, strings.Repeat(string(rune('a'+i)), min(n, headBytes)))
		if i == 3 {
			want = append(want, "control 9 hello")
		}
	}
	want = append(want, "control 8 \x03\xe8bye")

	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
		t.Fatal(err)
	}
	nc := conn.NetConn() // gorilla's reader holds nothing: the server waited for "go"
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	stream, err := io.ReadAll(nc)
	if err != nil && len(stream) == 0 {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		var f frameSplitter
		var got []string
		rest := stream
		for len(rest) > 0 {
			n := 1 + rng.IntN(min(len(rest), []int{3, 40, 3000, 100000}[trial%4]))
			err := f.feed(rest[:n],
				func(head []byte) { got = append(got, string(head)) },
				func(op byte, p []byte) error { got = append(got, fmt.Sprintf("control %d %s", op, p)); return nil })
			if err != nil {
				t.Fatalf("trial %d: %v", trial, err)
			}
			rest = rest[n:]
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("trial %d: got %d messages %.300q, want %d %.300q", trial, len(got), got, len(want), want)
		}
	}
}

func TestFrameSplitterRefusesBadFrames(t *testing.T) {
	for name, frame := range map[string][]byte{
		"masked":                 {0x81, 0x81, 1, 2, 3, 4, 'x'},
		"reserved bit":           {0xc1, 0x01, 'x'},
		"reserved opcode":        {0x83, 0x00},
		"fragmented control":     {0x09, 0x00},
		"long control":           {0x89, 126, 0, 126},
		"lone continuation":      {0x80, 0x00},
		"message inside message": {0x01, 0x01, 'x', 0x81, 0x01, 'y'},
	} {
		var f frameSplitter
		err := f.feed(frame, func([]byte) {}, func(byte, []byte) error { return nil })
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The benchmark's reader, end to end against a gorilla server: frames with a sequence
// number become samples, pings are answered, and a close ends it with the code.
func TestSubscriberRecordsFramesAndAnswersPings(t *testing.T) {
	url, pongs := gorillaServer(t, func(c *websocket.Conn) error {
		for seq := range 5 {
			msg := fmt.Sprintf(`bokehplot:x:{"msgtype": "modelpush", "modelspecs": [{"attributes": {"seq": %d, "pad": "%s"}}]}`,
				seq+1, strings.Repeat("p", seq*20000))
			if err := writeMessage(c, websocket.TextMessage, []byte(msg)); err != nil {
				return err
			}
		}
		if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
		return c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, ""), time.Now().Add(time.Second))
	})
	s, err := dialSubscriber(url, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.conn.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-pongs:
		if p != "are you there" {
			t.Errorf("pong %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not end at the close frame")
	}
	if s.err == nil || !strings.Contains(s.err.Error(), "code 4001") {
		t.Errorf("reader ended with %v, want the close code", s.err)
	}
	var seqs []uint64
	for _, sm := range s.take() {
		seqs = append(seqs, sm.seq)
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
		t.Errorf("samples %v", seqs)
	}
}
