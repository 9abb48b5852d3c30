package broker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// keypair makes a CURVE keypair or fails the test.
func keypair(t testing.TB) (public, secret string) {
	t.Helper()
	public, secret, err := NewKeypair()
	if err != nil {
		t.Fatal(err)
	}
	return public, secret
}

// expectSilence checks that c receives nothing while pub publishes probes for a while.
func expectSilence(t *testing.T, c *collector, pub Publisher, topic string) {
	t.Helper()
	for i := range 20 {
		pub.Publish(Message{Topic: topic, Payload: fmt.Appendf(nil, "secret %d", i)})
		time.Sleep(10 * time.Millisecond)
	}
	c.expectNone(t)
	if st := c.sub.Stats(); st.Received != 0 {
		t.Fatalf("a client outside the allow-list received %d messages: %+v", st.Received, st)
	}
}

// A CURVE publisher serves only the clients in its allow-list: another key, or none,
// receives nothing.
func TestCurveServesOnlyAllowedClients(t *testing.T) {
	if !zmq.HasCurve() {
		t.Skip("libzmq without CURVE")
	}
	serverPub, serverSecret := keypair(t)
	allowedPub, allowedSecret := keypair(t)
	_, rogueSecret := keypair(t)
	pub := newBoundPublisher(t, WithCurve(Curve{Secret: serverSecret, Allow: []string{allowedPub}}))
	const topic = "bokehplot:private"
	allowed := newCollectorWith(t, pub.Endpoint(), []Option{WithCurve(Curve{Secret: allowedSecret, ServerKey: serverPub})}, topic)
	allowed.awaitRoute(t, pub, "pub")
	pub.Publish(Message{Topic: topic, Payload: []byte("for the allowed")})
	if m := allowed.next(t); string(m.Payload) != "for the allowed" {
		t.Fatalf("got %q", m.Payload)
	}

	rogue := newCollectorWith(t, pub.Endpoint(), []Option{WithCurve(Curve{Secret: rogueSecret, ServerKey: serverPub})}, topic)
	plain := newCollector(t, pub.Endpoint(), topic)
	time.Sleep(200 * time.Millisecond) // their handshakes have been refused by now
	expectSilence(t, rogue, pub, topic)
	expectSilence(t, plain, pub, topic)
}

// Through a CURVE forwarder, a publisher outside the input's allow-list injects nothing,
// and a subscriber outside the output's reads nothing; the listed ones work.
func TestCurveForwarderRefusesRogues(t *testing.T) {
	if !zmq.HasCurve() {
		t.Skip("libzmq without CURVE")
	}
	fwdPub, fwdSecret := keypair(t)
	apiPub, apiSecret := keypair(t)
	workerPub, workerSecret := keypair(t)
	_, rogueSecret := keypair(t)
	f, err := NewForwarder("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", WithLogger(quietLogger()),
		WithCurve(Curve{Secret: fwdSecret, Allow: []string{workerPub}}), WithCurvePublishers([]string{apiPub}))
	if err != nil {
		t.Fatal(err)
	}
	runForwarder(t, f)
	connect := func(secret string) *ZMQPublisher {
		p, err := NewZMQPublisher(f.InputEndpoint(), Connect, WithLogger(quietLogger()), WithConnectWait(200*time.Millisecond),
			WithCurve(Curve{Secret: secret, ServerKey: fwdPub}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	api, rogueAPI := connect(apiSecret), connect(rogueSecret)
	const topic = "bokehplot:behind"
	worker := newCollectorWith(t, f.OutputEndpoint(), []Option{WithCurve(Curve{Secret: workerSecret, ServerKey: fwdPub})}, topic)
	worker.awaitRoute(t, api, "api")
	for i := range 20 {
		rogueAPI.Publish(Message{Topic: topic, Payload: fmt.Appendf(nil, "injected %d", i)})
	}
	api.Publish(Message{Topic: topic, Payload: []byte("genuine")})
	if m := worker.next(t); string(m.Payload) != "genuine" {
		t.Fatalf("the worker got %q before the genuine change", m.Payload)
	}
	rogueWorker := newCollectorWith(t, f.OutputEndpoint(), []Option{WithCurve(Curve{Secret: rogueSecret, ServerKey: fwdPub})}, topic)
	time.Sleep(200 * time.Millisecond)
	expectSilence(t, rogueWorker, api, topic)
	worker.expectNoLoss(t)
	for m := range len(worker.msgs) {
		if got := <-worker.msgs; strings.HasPrefix(string(got.Payload), "injected") {
			t.Fatalf("message %d: injected %q reached the worker", m, got.Payload)
		}
	}
}

func TestLocalEndpoint(t *testing.T) {
	for addr, want := range map[string]bool{
		"tcp://127.0.0.1:5555": true, "tcp://localhost:5555": true, "tcp://[::1]:5555": true,
		"ipc:///run/bokeh/zmq": true, "inproc://x": true, "tcp://127.0.0.1;192.0.2.1:5555": false,
		"tcp://192.0.2.1;127.0.0.1:5555": true, "tcp://*:5555": false, "tcp://0.0.0.0:5555": false,
		"tcp://192.0.2.10:5555": false, "tcp://plots.example:5555": false, "udp://127.0.0.1:1": false, "127.0.0.1:5555": false,
	} {
		if got := LocalEndpoint(addr); got != want {
			t.Errorf("LocalEndpoint(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestCheckKey(t *testing.T) {
	pub, secret := keypair(t)
	for _, k := range []string{pub, secret} {
		if err := CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q): %v", k, err)
		}
	}
	for _, bad := range []string{"", "short", strings.Repeat("a", 39), strings.Repeat("a", 41), strings.Repeat("~", 40), strings.Repeat(" ", 40)} {
		if CheckKey(bad) == nil {
			t.Errorf("CheckKey(%q) accepted", bad)
		}
	}
	if got, err := PublicKey(secret); err != nil || got != pub {
		t.Fatalf("PublicKey = %q %v, want %q", got, err, pub)
	}
}
