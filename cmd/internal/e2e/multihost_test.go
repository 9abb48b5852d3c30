package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	zmq "github.com/pebbe/zmq4"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// TestMultiHost runs the production topology on machines of its own: a forwarder, two API
// processes, two workers, redis, the clients and a rogue each in a Linux network namespace,
// on one segment of 192.0.2.0/24 (cluster.Network). ZeroMQ is CURVE throughout. Writers
// stream through both APIs, page-like clients watch through both workers, and while they
// do, the rogue tries to read at the forwarder's output and to inject at its input, in
// plaintext and with a key of its own, and one worker's link goes down for 5 s. Every page
// must end at the stored state, the rogue must read nothing and inject nothing.
func TestMultiHost(t *testing.T) {
	if !zmq.HasCurve() {
		t.Skip("MULTI-HOST TEST NOT RUN: libzmq without CURVE")
	}
	n := cluster.NewNetwork(t)
	fwd, redisHost, client, rogue := n.Host("fwd", 1), n.Host("redis", 6), n.Host("client", 10), n.Host("rogue", 66)
	apis := []*cluster.Host{n.Host("api1", 2), n.Host("api2", 3)}
	workers := []*cluster.Host{n.Host("w1", 4), n.Host("w2", 5)}
	b := cluster.Build(t)
	keys := t.TempDir()
	if out, err := execOut(b.Server, "keygen", keys, "forwarder", "apis/api1", "apis/api2", "workers/w1", "workers/w2", "rogue"); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	env := []string{"BOKEH_SECRET_KEY=multi-host-secret"}
	fwdIn, fwdOut := "tcp://"+fwd.IP+":5556", "tcp://"+fwd.IP+":5555"
	redisHost.Start(t, "redis", "redis-server", []string{"--port", "6379", "--bind", redisHost.IP,
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", t.TempDir()}, nil)
	fwd.Start(t, "forwarder", b.Server, []string{"forwarder", "--in", fwdIn, "--out", fwdOut,
		"--zmq-curve-key", filepath.Join(keys, "forwarder.key"), "--zmq-curve-allow", filepath.Join(keys, "workers"),
		"--zmq-curve-allow-publishers", filepath.Join(keys, "apis")}, nil)
	httpc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: client.DialContext}}
	var roots []string
	for i, api := range apis {
		root := "http://" + api.IP + ":5006/"
		roots = append(roots, root)
		p := api.Start(t, "api"+strconv.Itoa(i+1), b.Server, []string{"--ip", api.IP, "--port", "5006",
			"--backend", "redis", "--no-start-redis", "--redis-host", redisHost.IP, "--redis-port", "6379",
			"--no-ws-start", "--ws-conn-string", "ws://" + workers[i].IP + ":5007/bokeh/sub/",
			"--zmqaddr", fwdIn, "--zmq-connect", "--zmq-curve-key", filepath.Join(keys, "apis", fmt.Sprintf("api%d.key", i+1)),
			"--zmq-curve-server-key", filepath.Join(keys, "forwarder.pub")}, env)
		waitVia(t, httpc, p, root+"bokeh/ping")
	}
	for i, w := range workers {
		p := w.Start(t, "worker"+strconv.Itoa(i+1), b.Worker, []string{"--ip", w.IP, "--ws-port", "5007",
			"--zmqaddr", fwdOut, "--api-url", roots[i], "--zmq-curve-key", filepath.Join(keys, "workers", fmt.Sprintf("w%d.key", i+1)),
			"--zmq-curve-server-key", filepath.Join(keys, "forwarder.pub")}, env)
		waitVia(t, httpc, p, "http://"+w.IP+":5007/healthz")
	}

	doc := cluster.NewSeqDocVia(t, httpc, roots[0], "multi-host", 2, 20)
	v := cluster.NewValidator()
	dialer := &websocket.Dialer{HandshakeTimeout: 15 * time.Second, NetDialContext: client.DialContext}
	for i := range 8 {
		dialLive(t, cluster.LiveOptions{Root: roots[i%2], URL: "ws://" + workers[i%2].IP + ":5007/bokeh/sub/",
			Topic: doc.Topic, Auth: doc.ReadKey, Reconnect: true, Reload: doc.Streams(), HTTP: httpc, Dialer: dialer,
			Log: v.NewClient(fmt.Sprintf("page %d on %s", i, workers[i%2].Name), false)})
	}

	// The rogue: the test binary again, inside the rogue's namespace (rogueHelper).
	injected := fmt.Sprintf(`{"msgtype": "modelpush", "modelspecs": %s}`, doc.WriteBody(0, 999999))
	rogueProc := rogue.Start(t, "rogue", os.Args[0], nil,
		[]string{"BOKEH_ROGUE=1", "BOKEH_ROGUE_IN=" + fwdIn, "BOKEH_ROGUE_OUT=" + fwdOut, "BOKEH_ROGUE_TOPIC=" + doc.Topic,
			"BOKEH_ROGUE_KEY_FILE=" + filepath.Join(keys, "rogue.key"), "BOKEH_ROGUE_SERVER_KEY_FILE=" + filepath.Join(keys, "forwarder.pub"),
			"BOKEH_ROGUE_PAYLOAD=" + injected, "BOKEH_ROGUE_FOR=6s"})

	writers := []*streamWriter{newStreamWriter(doc.Via(roots[0]), v, 0), newStreamWriter(doc.Via(roots[1]), v, 1)}
	for _, w := range writers {
		w.doc.HTTP = httpc
	}
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() { w.writeN(t, 400, 20*time.Millisecond) })
	}
	for deadline := time.Now().Add(writeWindow); len(v.AckedSeqs(doc.Stream(0))) < 60 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	n.LinkDown(workers[0])
	time.Sleep(5 * time.Second)
	n.LinkUp(workers[0])
	wg.Wait()

	exited, _ := rogueProc.Exited()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the rogue did not finish")
	}
	log := rogueProc.Log()
	if !strings.Contains(log, "ROGUE read 0 messages in plaintext, 0 with its own key") || !strings.Contains(log, "ROGUE injected") {
		t.Errorf("the rogue:\n%s", log)
	}
	caught := waitCaughtUp(t, v)
	sum := v.Check(t, doc.Stored(t))
	var said []string
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "ROGUE") {
			said = append(said, line)
		}
	}
	st := workerStatsVia(t, httpc, workers[0])
	t.Logf("caught up %v after the last write; %s; %s: zmq reconnects %d, resyncs %v; %s",
		caught.Round(time.Millisecond), sum, workers[0].Name, st.ZMQReconnects, st.Resyncs, strings.Join(said, "; "))
}

// workerStatsVia reads a worker's /stats through c.
func workerStatsVia(t *testing.T, c *http.Client, w *cluster.Host) cluster.WorkerStats {
	t.Helper()
	var st cluster.WorkerStats
	resp, err := c.Get("http://" + w.IP + ":5007/stats")
	if err != nil {
		t.Fatalf("stats of %s: %v", w.Name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("stats of %s: %v", w.Name, err)
	}
	return st
}

// TestMain runs the tests, or, when TestMultiHost starts this binary again inside the
// rogue's namespace, the rogue.
func TestMain(m *testing.M) {
	if os.Getenv("BOKEH_ROGUE") == "1" {
		if err := runRogue(); err != nil {
			fmt.Println("ROGUE failed:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runRogue is the rogue of TestMultiHost: it subscribes at the forwarder's output and
// publishes at its input, in plaintext and with a CURVE key the forwarder does not list,
// and reports what it read.
func runRogue() error {
	secret, err := os.ReadFile(os.Getenv("BOKEH_ROGUE_KEY_FILE"))
	if err != nil {
		return err
	}
	serverKey, err := os.ReadFile(os.Getenv("BOKEH_ROGUE_SERVER_KEY_FILE"))
	if err != nil {
		return err
	}
	own := broker.Curve{Secret: lastLine(secret), ServerKey: lastLine(serverKey)}
	topic, payload := os.Getenv("BOKEH_ROGUE_TOPIC"), []byte(os.Getenv("BOKEH_ROGUE_PAYLOAD"))
	dur, _ := time.ParseDuration(os.Getenv("BOKEH_ROGUE_FOR"))
	var subs []*broker.Subscriber
	var pubs []*broker.ZMQPublisher
	for _, c := range []broker.Curve{{}, own} {
		sub, err := broker.NewSubscriber(os.Getenv("BOKEH_ROGUE_OUT"), func(broker.Message) {}, broker.WithCurve(c))
		if err != nil {
			return err
		}
		defer sub.Close()
		if err := sub.Subscribe(topic); err != nil {
			return err
		}
		subs = append(subs, sub)
		pub, err := broker.NewZMQPublisher(os.Getenv("BOKEH_ROGUE_IN"), broker.Connect, broker.WithCurve(c),
			broker.WithConnectWait(time.Second))
		if err != nil {
			return err
		}
		defer pub.Close()
		pubs = append(pubs, pub)
	}
	sent := 0
	for end := time.Now().Add(dur); time.Now().Before(end); sent++ {
		for _, pub := range pubs {
			pub.Publish(broker.Message{Topic: topic, Payload: payload})
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("ROGUE injected %d messages on %s at each of two publishers\n", sent, topic)
	fmt.Printf("ROGUE read %d messages in plaintext, %d with its own key\n", subs[0].Stats().Received, subs[1].Stats().Received)
	return nil
}

// lastLine is the last non-empty line of a key file.
func lastLine(b []byte) string {
	lines := strings.Fields(string(b))
	return lines[len(lines)-1]
}

// waitVia waits for url to answer 200 through c, while p runs.
func waitVia(t *testing.T, c *http.Client, p *cluster.Proc, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := c.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !p.Running() || time.Now().After(deadline) {
			t.Fatalf("%s never answered %s (running %v): %v\n%s", p.Name, url, p.Running(), err, lastLines(p.Log(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// execOut runs a program and returns its output.
func execOut(bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, bin, args...).CombinedOutput()
}
