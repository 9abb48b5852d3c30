package broker

import (
	"bytes"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// pushPull returns a connected inproc PUSH/PULL pair, closed when tb ends.
func pushPull(tb testing.TB) (push, pull *zmq.Socket) {
	tb.Helper()
	var err error
	if push, err = zmq.NewSocket(zmq.PUSH); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { push.Close() })
	if pull, err = zmq.NewSocket(zmq.PULL); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pull.Close() })
	addr := inprocName("recv-test")
	if err := pull.Bind(addr); err != nil {
		tb.Fatal(err)
	}
	if err := push.Connect(addr); err != nil {
		tb.Fatal(err)
	}
	return push, pull
}

// pinnedZMQ4 is the pebbe/zmq4 release whose Socket layout rawSocket reads.
const pinnedZMQ4 = "v1.4.0"

// rawSocket reads pebbe/zmq4's unexported Socket layout, so the module is pinned: another
// version fails here, with what to do, before anything reads a wrong field. The version is
// in the path of the module's source files, as the binary records them.
func TestZMQ4LayoutIsPinned(t *testing.T) {
	file, _ := runtime.FuncForPC(reflect.ValueOf(zmq.NewSocket).Pointer()).FileLine(reflect.ValueOf(zmq.NewSocket).Pointer())
	_, version, ok := strings.Cut(file, "github.com/pebbe/zmq4@")
	if !ok {
		t.Fatalf("cannot tell the version of github.com/pebbe/zmq4 from %s", file)
	}
	version, _, _ = strings.Cut(version, "/")
	if version != pinnedZMQ4 {
		t.Fatalf("github.com/pebbe/zmq4 is %s, but broker/zmqrecv.go reads the Socket layout of %s: "+
			"check that rawSocket still finds the libzmq socket in the new version, then update pinnedZMQ4", version, pinnedZMQ4)
	}
}

// The receiver reads libzmq's socket behind pebbe/zmq4's back: it must find that socket
// (a new binding version with another layout would make sameSocket false and the receiver
// fall back to the binding), and must deliver multipart messages exactly, empty parts too.
func TestPartReceiver(t *testing.T) {
	push, pull := pushPull(t)
	if !sameSocket(pull) {
		t.Fatal("sameSocket is false: pebbe/zmq4's Socket layout changed; update rawSocket")
	}
	r := newPartReceiver(pull)
	if r.raw == nil {
		t.Fatal("receiver fell back to the binding")
	}
	if _, err := r.recv(zmq.DONTWAIT); !isAgain(err) {
		t.Fatalf("empty socket: err %v, want EAGAIN", err)
	}
	big := bytes.Repeat([]byte("0123456789"), 7000)
	msgs := [][][]byte{
		{[]byte("bokehplot:doc"), big},
		{[]byte("t"), {}, []byte("last")},
		{[]byte("single")},
	}
	for _, m := range msgs {
		if _, err := push.SendMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range msgs {
		var got [][]byte
		var err error
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err = r.recv(zmq.DONTWAIT)
			if !isAgain(err) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if len(got) != len(want) {
			t.Fatalf("message %d: %d parts, want %d", i, len(got), len(want))
		}
		for j := range want {
			if !bytes.Equal(got[j], want[j]) {
				t.Fatalf("message %d part %d: %d bytes differ from the %d sent", i, j, len(got[j]), len(want[j]))
			}
		}
	}
}

// BenchmarkRecv61KB receives a message with a 61 KB payload (a 1000-point update) through
// the binding and through partReceiver; sending is the same in both.
func BenchmarkRecv61KB(b *testing.B) {
	for _, direct := range []bool{false, true} {
		name := "binding"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			push, pull := pushPull(b)
			r := newPartReceiver(pull)
			if !direct {
				r.raw = nil
			}
			topic, header := []byte("bokehplot:doc"), Header{Kind: MsgChange, Seq: 1}.Append(nil)
			body := bytes.Repeat([]byte("0.8414709848078965, "), 3050)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := push.SendMessage(topic, header, body); err != nil {
					b.Fatal(err)
				}
				parts, err := r.recv(0)
				if err != nil || len(parts) != 3 || len(parts[2]) != len(body) {
					b.Fatal(err)
				}
			}
		})
	}
}
