package wshub

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func refusal(topic, msg string) string {
	return topic + `:{"msgtype": "error", "error_msg": "` + msg + `"}`
}

func TestSubscribeRules(t *testing.T) {
	e := newEnv(t, nil, false)
	c := e.dial()

	c.mustSubscribe("bokehplot:doc1", "write1")
	readonly := e.dial()
	readonly.mustSubscribe("bokehplot:doc1", "read1")
	if c.id == readonly.id || len(c.id) != 36 {
		t.Fatalf("client ids %q and %q: want distinct uuids", c.id, readonly.id)
	}

	refusals := []struct {
		topic string
		auth  any
		msg   string
	}{
		{"bokehplot:doc2", "write1", errUnauthorized}, // another doc's key
		{"bokehplot:doc2", nil, errUnauthorized},
		{"bokehplot:doc2", "", errUnauthorized},
		{"bokehplot:doc2", 42, errUnauthorized},
		{"bokehplot:nodoc", "write1", errUnknownDoc},
		{"bokehplot:temporary-xyz", nil, errInvalidTopic},
		{"bokehplot:temporary-", nil, errInvalidTopic},
		{"bokehplot:temporary-" + strings.Repeat("a", 65), nil, errInvalidTopic},
		{"a:b:c", nil, errInvalidTopic},
		{"nocolon", nil, errInvalidTopic},
	}
	w := e.dial()
	for _, r := range refusals {
		w.subscribe(r.topic, r.auth)
		w.expect(refusal(r.topic, r.msg))
	}
	// Refusals never close the socket.
	w.mustSubscribe("bokehplot:doc2", "write2")

	for _, topic := range []string{
		"bokehplot:temporary-" + strings.Repeat("0123456789ABCDEF", 2), // BokehJS 0.8.2 form
		"bokehplot:temporary-" + strings.Repeat("f", 64),
		"bokehuser:defaultuser",
		"debug:debug",
		"anything:else",
	} {
		w.mustSubscribe(topic, nil)
	}
	if got, want := e.hub.Stats().AuthFailures, uint64(len(refusals)); got != want {
		t.Fatalf("auth failures %d, want %d", got, want)
	}
}

func TestClientFramesNeverDropSocket(t *testing.T) {
	e := newEnv(t, nil, false)
	c := e.dial()
	bad := []string{"not json", "[]", `{"topic": "bokehuser:x"}`, `{"msgtype": 5}`,
		`{"msgtype": "subscribe"}`, `{"msgtype": "subscribe", "topic": 7}`, "\xff\xfe"}
	for _, f := range bad {
		c.send(f)
	}
	c.send(`{"msgtype": "ping", "topic": "bokehuser:x"}`) // other msgtypes: ignored, valid
	c.mustSubscribe("bokehuser:x", nil)
	c.expectEmpty()
	if got := e.hub.Stats().BadClientFrames; got != uint64(len(bad)) {
		t.Fatalf("bad frames %d, want %d", got, len(bad))
	}
}

func TestResubscribeIsIdempotent(t *testing.T) {
	e := newEnv(t, nil, false)
	c := e.dial()
	c.mustSubscribe("bokehplot:doc1", "write1")
	first := c.id
	c.mustSubscribe("bokehplot:doc1", "read1")
	if c.id != first {
		t.Fatalf("client id changed from %s to %s", first, c.id)
	}
	// A refused re-subscribe leaves the existing subscription alone.
	c.subscribe("bokehplot:doc1", "wrong")
	c.expect(refusal("bokehplot:doc1", errUnauthorized))
	e.syncRoute()
	e.publish("bokehplot:doc1", `{"msgtype": "modelpush", "modelspecs": []}`)
	c.expect(`bokehplot:doc1:{"msgtype": "modelpush", "modelspecs": []}`)
	e.publish("bokehplot:doc1", `{"msgtype": "modelpush", "modelspecs": [1]}`)
	c.expect(`bokehplot:doc1:{"msgtype": "modelpush", "modelspecs": [1]}`)
	if st := e.hub.Stats(); st.Subscriptions != int64(1+e.syncClients()) {
		t.Fatalf("subscriptions %d, want doc1's (and the sync client's)", st.Subscriptions)
	}
}

func TestAPIUnreachable(t *testing.T) {
	// A listener that drops every connection: unlike a closed server's port, no other
	// test's server can take it over meanwhile.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	e := newEnv(t, func(c *Config) { c.APIURL = "http://" + ln.Addr().String() + "/" }, false)
	c := e.dial()
	c.subscribe("bokehplot:doc1", "write1")
	c.expect(refusal("bokehplot:doc1", errAPIUnreachable))
	c.subscribe("bokehuser:u", nil)
	c.expect(refusal("bokehuser:u", errAPIUnreachable))
	c.mustSubscribe("debug:debug", "")
}

// TestUserTopicsNeedCredentials: in multi-user mode the API grants bokehuser:<name> only with
// that user's credentials; the worker asks it and refuses (keeping the socket) otherwise.
func TestUserTopicsNeedCredentials(t *testing.T) {
	e := newEnv(t, nil, false)
	e.api.mu.Lock()
	e.api.users["alice"] = "alice-token"
	e.api.mu.Unlock()
	c := e.dial()
	for _, auth := range []any{nil, "", "bob-token", 7} {
		c.subscribe("bokehuser:alice", auth)
		c.expect(refusal("bokehuser:alice", errUnauthorized))
	}
	c.mustSubscribe("bokehuser:alice", "alice-token")
	c.mustSubscribe("bokehuser:bob", nil) // not a multi-user account here: open
	if got := e.hub.Stats().AuthFailures; got != 4 {
		t.Fatalf("auth failures %d, want 4", got)
	}
}

func TestTooManySubscriptions(t *testing.T) {
	e := newEnv(t, nil, false)
	c := e.dial()
	for i := range MaxTopicsPerClient {
		c.subscribe("debug:t"+strconv.Itoa(i), nil)
	}
	for range MaxTopicsPerClient {
		if f := c.next(); !strings.Contains(f, "subscribesuccess") {
			t.Fatalf("got %q", f)
		}
	}
	c.subscribe("debug:onemore", nil)
	c.expect(refusal("debug:onemore", errTooManyTopics))
}
