package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/spf13/pflag"

	"github.com/bokeh-go/bokeh-server/broker"
)

// The limits run in child processes of this program, pinned to the server CPUs like the
// servers they stand in for: "internal-broadcast" (a minimal gorilla websocket server
// broadcasting one PreparedMessage per update to every connection) and "internal-zmq"
// (ZeroMQ PUB→SUB over TCP loopback in one process, like an API and a worker sharing the
// CPU).

func runChild(name string, args []string) int {
	if name == "internal-clients" { // its stdin carries requests; EOF ends it
		if err := clientsChild(args); err != nil {
			fmt.Fprintln(os.Stderr, name+":", err)
			return 1
		}
		return 0
	}
	// The parent's death (stdin closing) or a signal ends a child.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	var err error
	switch name {
	case "internal-broadcast":
		err = broadcastChild(ctx, args)
	case "internal-zmq":
		err = zmqChild(args)
	default:
		err = fmt.Errorf("unknown internal command %q", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}

// zmqCase is one frame kind's raw ZeroMQ figures, one value per run.
type zmqCase struct {
	Name  string    `json:"name"`
	Key   string    `json:"key"`
	Bytes int       `json:"bytes"`
	Rate  []float64 `json:"rate"`
	P50   []float64 `json:"p50"`
	P99   []float64 `json:"p99"`
	P999  []float64 `json:"p999"`
}

func zmqChild(args []string) error {
	fs := pflag.NewFlagSet("internal-zmq", pflag.ContinueOnError)
	runs := fs.Int("runs", 3, "runs")
	dur := fs.Duration("duration", 2*time.Second, "phase length")
	points := fs.Int("points", 1000, "points of the update frame")
	frameBytes := fs.Int("frame-bytes", 1024, "fan-out frame size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	docid := "00000000-0000-0000-0000-000000000000"
	topic := broker.PlotTopic(docid)
	bodies, err := newSourceBodies(docid, *points, 1)
	if err != nil {
		return err
	}
	body := bodies.body(nil, 123456)
	updatePush := append(append([]byte(`{"msgtype": "modelpush", "modelspecs": `), body...), '}')
	small := newSmallBodies(docid, *frameBytes).body(nil, 123456)
	smallPush := append(append([]byte(`{"msgtype": "modelpush", "modelspecs": `), small...), '}')
	cases := []struct {
		key, name string
		payload   []byte
		window    int
	}{
		{"update", fmt.Sprintf("%d-point update", *points), updatePush, 100},
		{"fanout", fmt.Sprintf("%d-byte fan-out update", *frameBytes), smallPush, 1000},
	}

	pub, err := zmq.NewSocket(zmq.PUB)
	if err != nil {
		return err
	}
	defer pub.Close()
	sub, err := zmq.NewSocket(zmq.SUB)
	if err != nil {
		return err
	}
	defer sub.Close()
	for _, s := range []*zmq.Socket{pub, sub} {
		s.SetLinger(0)
		s.SetSndhwm(broker.DefaultHWM)
		s.SetRcvhwm(broker.DefaultHWM)
	}
	if err := pub.Bind("tcp://127.0.0.1:*"); err != nil {
		return err
	}
	ep, _ := pub.GetLastEndpoint()
	if err := sub.Connect(ep); err != nil {
		return err
	}
	sub.SetSubscribe(topic)
	sub.SetRcvtimeo(20 * time.Millisecond)
	connected := false
	for i := 0; i < 250 && !connected; i++ { // at most 5 s
		pub.SendBytes([]byte(topic), zmq.SNDMORE)
		pub.SendBytes([]byte("probe"), 0)
		if _, err := sub.RecvMessageBytes(0); err == nil {
			connected = true
		}
	}
	if !connected {
		return fmt.Errorf("SUB never received from PUB at %s", ep)
	}
	for { // drain the probes
		if _, err := sub.RecvMessageBytes(0); err != nil {
			break
		}
	}
	var out []zmqCase
	for _, c := range cases {
		// The frames bokeh-server's publisher sends (broker/wire.go).
		header := broker.Header{Kind: broker.MsgChange, Seq: 1}.Append(nil)
		msg := [][]byte{[]byte(topic), header, c.payload}
		zc := zmqCase{Name: c.name, Key: c.key, Bytes: len(topic) + len(header) + len(c.payload)}
		for range *runs {
			zc.Rate = append(zc.Rate, zmqThroughput(pub, sub, msg, c.window, *dur))
			lat := zmqLatency(pub, sub, msg, *dur/2)
			p := percentiles(lat, 50, 99, 99.9)
			zc.P50, zc.P99, zc.P999 = append(zc.P50, p[0]), append(zc.P99, p[1]), append(zc.P999, p[2])
		}
		out = append(out, zc)
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// zmqThroughput sends msg back to back for dur, with at most window messages not yet
// received (so that no high-water mark drops any), and returns messages per second.
func zmqThroughput(pub, sub *zmq.Socket, msg [][]byte, window int, dur time.Duration) float64 {
	var received atomic.Int64
	var last atomic.Int64
	var stop atomic.Bool
	signal := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if _, err := sub.RecvMessageBytes(0); err != nil {
				continue // timeout: look at stop again
			}
			received.Add(1)
			last.Store(now())
			select {
			case signal <- struct{}{}:
			default:
			}
		}
	}()
	start := now()
	deadline := time.Now().Add(dur)
	sent := int64(0)
	for time.Now().Before(deadline) {
		if sent-received.Load() >= int64(window) {
			select {
			case <-signal:
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if err := sendParts(pub, msg); err != nil {
			break
		}
		sent++
	}
	drainEnd := time.Now().Add(2 * time.Second)
	for received.Load() < sent && time.Now().Before(drainEnd) {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	<-done
	if l := last.Load(); l > start {
		return float64(received.Load()) / (float64(l-start) / 1e9)
	}
	return 0
}

// zmqLatency sends one message at a time and times its arrival, for at most dur and 5,000
// messages.
func zmqLatency(pub, sub *zmq.Socket, msg [][]byte, dur time.Duration) []int64 {
	var out []int64
	deadline := time.Now().Add(dur)
	for len(out) < 5000 && time.Now().Before(deadline) {
		t0 := now()
		if err := sendParts(pub, msg); err != nil {
			continue
		}
		if _, err := sub.RecvMessageBytes(0); err != nil {
			continue
		}
		out = append(out, now()-t0)
	}
	return out
}

// sendParts sends one multipart message.
func sendParts(pub *zmq.Socket, parts [][]byte) error {
	for i, p := range parts {
		flag := zmq.SNDMORE
		if i == len(parts)-1 {
			flag = 0
		}
		if _, err := pub.SendBytes(p, flag); err != nil {
			return err
		}
	}
	return nil
}
