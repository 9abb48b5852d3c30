package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// z85Key matches a 40-character Z85 key.
var z85Key = regexp.MustCompile(`[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}`)

// procEnv reads a process's environment.
func procEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("environ of %d: %v", pid, err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// TestCurveLocalWorkers: with --zmq-curve-local, bokeh-server makes keys for itself and the
// worker it starts and hands the worker its keys through the environment, never its command
// line. Pages get every write; local processes subscribing at --zmqaddr, in plaintext or
// with a key of their own, get nothing.
func TestCurveLocalWorkers(t *testing.T) {
	if !zmq.HasCurve() {
		t.Skip("libzmq without CURVE")
	}
	b := cluster.Build(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{Extra: []string{"--zmq-curve-local"}})
	pid := workerPid(t, s, s.WSPort)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), s.Opts.SecretKey) || z85Key.Match(cmdline) {
		t.Errorf("the worker's command line carries a secret: %q", strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	env := procEnv(t, pid)
	serverKey := env["BOKEH_ZMQ_CURVE_SERVER_KEY"]
	if broker.CheckKey(env["BOKEH_ZMQ_CURVE_KEY"]) != nil || broker.CheckKey(serverKey) != nil {
		t.Fatalf("the worker did not get its CURVE keys through the environment")
	}

	rogues := map[string]*broker.Subscriber{}
	_, rogueSecret, _ := broker.NewKeypair()
	for name, curve := range map[string]broker.Curve{"plaintext": {}, "unknown key": {Secret: rogueSecret, ServerKey: serverKey}} {
		sub, err := broker.NewSubscriber(s.Opts.ZMQAddr, func(broker.Message) {}, broker.WithCurve(curve))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Close() })
		rogues[name] = sub
	}
	doc := cluster.NewSeqDoc(t, s.Root, "curve-local", 1, 20)
	for name, sub := range rogues {
		if err := sub.Subscribe(doc.Topic); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	v := cluster.NewValidator()
	for i := range 3 {
		dialLive(t, cluster.LiveOptions{Root: s.Root, URL: cluster.WSURL(t, s.Root), Topic: doc.Topic, Auth: doc.ReadKey,
			Log: v.NewClient(fmt.Sprintf("page %d", i), true)})
	}
	mustAllOK(t, "writes", doc.WriteRange(v, 0, 1, 50, 5*time.Millisecond), 50)
	waitCaughtUp(t, v)
	v.Check(t, doc.Stored(t))
	for name, sub := range rogues {
		if st := sub.Stats(); st.Received != 0 {
			t.Errorf("a local %s subscriber received %d messages: %+v", name, st.Received, st)
		}
	}
}

// Plaintext ZeroMQ on an address other hosts can reach is refused, with what to do, by
// bokeh-server, ws-worker and the forwarder; --zmq-insecure accepts the risk.
func TestPlaintextRefusedOffLoopback(t *testing.T) {
	b := cluster.Build(t)
	wild := "tcp://0.0.0.0:" + fmt.Sprint(cluster.FreePort(t))
	startFails(t, "--zmq-insecure", "--zmqaddr", wild)
	for _, c := range []struct {
		bin  string
		args []string
	}{
		{b.Server, []string{"--no-ws-start", "--zmqaddr", wild}},
		{b.Worker, []string{"--zmqaddr", "tcp://192.0.2.1:5555"}},
		{b.Server, []string{"forwarder", "--in", wild, "--out", "tcp://127.0.0.1:5555"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, c.bin, append(c.args, "--check-config")...)
		cmd.Env = append(os.Environ(), "BOKEH_SECRET_KEY=s")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "bokeh-server keygen") || !strings.Contains(string(out), "--zmq-insecure") {
			t.Errorf("%v: %v\n%s", c.args, err, out)
		}
		cmd = exec.CommandContext(ctx, c.bin, append(c.args, "--zmq-insecure", "--check-config")...)
		cmd.Env = append(os.Environ(), "BOKEH_SECRET_KEY=s")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "configuration OK") {
			t.Errorf("%v --zmq-insecure: %v\n%s", c.args, err, out)
		}
		cancel()
	}
}
