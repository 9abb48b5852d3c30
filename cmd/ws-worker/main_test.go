package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/pflag"

	"github.com/bokeh-go/bokeh-server/api/workerapi"
	"github.com/bokeh-go/bokeh-server/broker"
)

const waitLimit = 20 * time.Second

func noEnv(string) string { return "" }

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags([]string{"--secret-key", "s"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.ip != "127.0.0.1" || o.wsPort != 5007 || o.zmqAddr != "tcp://127.0.0.1:5555" ||
		o.apiURL != "http://127.0.0.1:5006/" || o.urlPrefix != "" || o.logFormat != "text" || len(o.allowedOrigins) != 0 {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--url-prefix", "plots/", "--api-url", "http://api:80/p", "--allowed-origins", " https://a.org, ,https://b.org",
		"-v", "--log-format=json", "--drain-timeout", "0"}, func(k string) string {
		if k == secretEnv {
			return "from-env"
		}
		return ""
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.secretKey != "from-env" || o.urlPrefix != "/plots" || o.apiURL != "http://api:80/p/" ||
		len(o.allowedOrigins) != 2 || o.allowedOrigins[1] != "https://b.org" || !o.verbose || o.logFormat != "json" {
		t.Fatalf("got %+v", o)
	}
	for in, want := range map[string]string{"": "", "/": "", "//": "", "p": "/p", "/p": "/p", "/p/": "/p", "a/b/": "/a/b"} {
		if got := normalisePrefix(in); got != want {
			t.Errorf("normalisePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{}, // no secret
		{"--secret-key", "s", "--log-format", "xml"},
		{"--secret-key", "s", "--api-url", "localhost:5006"},
		{"--secret-key", "s", "--zmqaddr", "127.0.0.1:5555"},
		{"--secret-key", "s", "--ws-port", "70000"},
		{"--secret-key", "s", "--max-queue-bytes", "0"},
		{"--secret-key", "s", "extra"},
		{"--secret-key", "s", "--no-such-flag"},
	} {
		if _, err := parseFlags(args, noEnv, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", args)
		}
	}
	_, err := parseFlags(nil, noEnv, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--secret-key") {
		t.Fatalf("missing secret: %v", err)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlags([]string{"--help"}, noEnv, &out); !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, flag := range []string{"--ip", "--ws-port", "--url-prefix", "--zmqaddr", "--api-url", "--secret-key",
		"--allowed-origins", "--max-queue-bytes", "--ping-interval", "--write-timeout", "--drain-timeout",
		"--log-format", "--verbose", "--debug", secretEnv} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("usage lacks %s", flag)
		}
	}
	if code := run(context.Background(), []string{"-h"}, noEnv, io.Discard, io.Discard); code != 0 {
		t.Fatalf("run -h: exit %d", code)
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), nil, noEnv, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "--secret-key") {
		t.Fatalf("run without secret: exit %d, %q", code, stderr.String())
	}
}

// logLines hands the worker's JSON log records to the test as they are written.
type logLines struct{ ch chan map[string]any }

func (l logLines) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			select {
			case l.ch <- rec:
			default:
			}
		}
	}
	return len(p), nil
}

func (l logLines) await(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case rec := <-l.ch:
			if rec["msg"] == msg {
				return rec
			}
		case <-deadline:
			t.Fatalf("no %q log record", msg)
		}
	}
}

func TestRunServesAndStops(t *testing.T) {
	pub, err := broker.NewZMQPublisher("tcp://127.0.0.1:*", broker.Bind, broker.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(workerapi.InternalTokenHeader) != workerapi.InternalToken("s3cret") {
			http.Error(w, "bad token", http.StatusForbidden)
			return
		}
		w.Write([]byte(`{"apikey": "w", "readonlyapikey": "r"}`))
	}))
	defer api.Close()

	logs := logLines{ch: make(chan map[string]any, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"--ws-port", "0", "--zmqaddr", pub.Endpoint(), "--api-url", api.URL,
			"--url-prefix", "/pre/", "--log-format", "json", "--drain-timeout", "50ms"},
			func(k string) string {
				if k == secretEnv {
					return "s3cret"
				}
				return ""
			}, io.Discard, logs)
	}()
	rec := logs.await(t, "ws-worker listening")
	wsURL, _ := rec["websocket"].(string)
	if !strings.HasPrefix(wsURL, "ws://127.0.0.1:") || !strings.HasSuffix(wsURL, "/pre/bokeh/sub/") || rec["zmq"] != pub.Endpoint() {
		t.Fatalf("startup record %v", rec)
	}

	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteMessage(websocket.TextMessage, []byte(`{"msgtype": "subscribe", "topic": "bokehplot:d", "auth": "r"}`))
	if _, reply, err := conn.ReadMessage(); err != nil || !strings.Contains(string(reply), "subscribesuccess") {
		t.Fatalf("subscribe: %q %v", reply, err)
	}
	// Publish until the subscription has reached the publisher; every frame is the same.
	frames := make(chan string, 1000)
	var readErr error
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				readErr = err
				close(frames)
				return
			}
			frames <- string(data)
		}
	}()
	payload := `{"msgtype": "modelpush", "modelspecs": []}`
	got := ""
	for deadline := time.Now().Add(waitLimit); got == "" && time.Now().Before(deadline); {
		pub.Publish(broker.Message{Topic: "bokehplot:d", Payload: []byte(payload)})
		select {
		case got = <-frames:
		case <-time.After(20 * time.Millisecond):
		}
	}
	if got != "bokehplot:d:"+payload {
		t.Fatalf("frame %q", got)
	}
	base := "http://" + strings.TrimSuffix(strings.TrimPrefix(wsURL, "ws://"), "/pre/bokeh/sub/")
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(waitLimit):
		t.Fatal("worker did not stop")
	}
	for range frames { // until the worker closes the connection
	}
	var ce *websocket.CloseError
	if !errors.As(readErr, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after shutdown: %v, want close 1001", readErr)
	}
}

func TestListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--secret-key", "s", "--ws-port", port, "--zmqaddr", "tcp://127.0.0.1:1"},
		noEnv, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--ws-port") {
		t.Fatalf("exit %d, log %q", code, stderr.String())
	}
}

func TestWatchParent(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var calls atomic.Int64
	getppid := func() int {
		if calls.Add(1) > 3 {
			return 1 // re-parented to init
		}
		return 4242
	}
	stopped := make(chan struct{})
	go watchParent(context.Background(), "4242", getppid, time.Millisecond, log, func() { close(stopped) })
	select {
	case <-stopped:
	case <-time.After(waitLimit):
		t.Fatal("parent change not noticed")
	}

	gone := make(chan struct{})
	watchParent(context.Background(), "4242", func() int { return 1 }, time.Hour, log, func() { close(gone) })
	select {
	case <-gone:
	default:
		t.Fatal("parent that died before the worker started not noticed")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	watchParent(ctx, "4242", func() int { return 4242 }, time.Millisecond, log, func() { t.Error("stopped with a live parent") })
}
