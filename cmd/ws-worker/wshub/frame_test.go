package wshub

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bokeh-go/bokeh-server/broker"
)

func TestParseClientFrame(t *testing.T) {
	f, err := parseClientFrame([]byte(`{"msgtype": "subscribe", "topic": "bokehplot:d", "auth": "k"}`))
	if err != nil || f != (clientFrame{"subscribe", "bokehplot:d", "k"}) {
		t.Fatalf("got %+v %v", f, err)
	}
	f, err = parseClientFrame([]byte(`{"auth": null, "topic": "bokehuser:u", "msgtype": "subscribe"}`))
	if err != nil || f != (clientFrame{"subscribe", "bokehuser:u", ""}) {
		t.Fatalf("got %+v %v", f, err)
	}
	for _, bad := range []string{"", "null", `"subscribe"`, `{"msgtype": null}`, `{"topic": "a:b"}`, `{"msgtype": "subscribe"`} {
		if _, err := parseClientFrame([]byte(bad)); err == nil {
			t.Errorf("parseClientFrame(%q) succeeded", bad)
		}
	}
}

func TestValidTemporary(t *testing.T) {
	for _, v := range []string{"temporary-" + strings.Repeat("0A", 16), "temporary-" + strings.Repeat("aF09", 16)} {
		if !validTemporary(v) {
			t.Errorf("validTemporary(%q) = false", v)
		}
	}
	for _, v := range []string{"temporary-", "temporary-g", "temporary-0", "temporary-" + strings.Repeat("a", 31),
		"temporary-" + strings.Repeat("a", 65), "temporary", "Temporary-a", "temporary-a b"} {
		if validTemporary(v) {
			t.Errorf("validTemporary(%q) = true", v)
		}
	}
}

func TestReplyFramesMatch082(t *testing.T) {
	if got, want := string(successFrame("bokehplot:d", "c-1")),
		`bokehplot:d:{"msgtype": "status", "status": ["subscribesuccess", "bokehplot:d", "c-1"]}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got, want := string(errorFrame("bokehplot:d", "unauthorized")),
		`bokehplot:d:{"msgtype": "error", "error_msg": "unauthorized"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestDeliverableOnPlot(t *testing.T) {
	for _, p := range []string{`{"msgtype": "modelpush", "modelspecs": []}`, `{"msgtype":"modelpush"}`,
		`{"modelspecs": [], "msgtype": "modelpush"}`, `{"msgtype": "status", "status": []}`, ` {"msgtype" : "modelpush"} `} {
		if !deliverableOnPlot([]byte(p)) {
			t.Errorf("deliverableOnPlot(%s) = false", p)
		}
	}
	for _, p := range []string{`{"msgtype": "modeldel"}`, `{"msgtype": "modelpushx"}`, `reload`, `{}`, `{"msgtype": 1}`, ``} {
		if deliverableOnPlot([]byte(p)) {
			t.Errorf("deliverableOnPlot(%s) = true", p)
		}
	}
}

// FuzzClientFrame feeds arbitrary client frames through the parser and the reply
// builders: nothing may panic, and every reply must be "<topic>:" + a JSON object.
func FuzzClientFrame(f *testing.F) {
	for _, seed := range []string{
		`{"msgtype": "subscribe", "topic": "bokehplot:d", "auth": "k"}`,
		`{"msgtype": "subscribe", "topic": "bokehplot:temporary-ABC", "auth": null}`,
		`{"msgtype": "subscribe", "topic": "a:\u2028\"<", "auth": 1}`, `{"msgtype": "x"}`, `{`, `[]`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseClientFrame(data)
		if err != nil {
			return
		}
		for _, reply := range [][]byte{successFrame(fr.topic, "id"), errorFrame(fr.topic, errUnauthorized)} {
			rest, ok := strings.CutPrefix(string(reply), fr.topic+":")
			if !ok || !json.Valid([]byte(rest)) {
				t.Fatalf("reply %q for topic %q is not topic:JSON", reply, fr.topic)
			}
		}
		if broker.ValidTopic(fr.topic) {
			kind, value := topicKind(fr.topic)
			if kind+":"+value != fr.topic {
				t.Fatalf("topicKind(%q) = %q, %q", fr.topic, kind, value)
			}
			validTemporary(value)
		}
	})
}
