package broker

import (
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{Kind: MsgChange, Origin: 1, Epoch: 2, Seq: 3, Prev: 0},
		{Kind: MsgAck, Origin: ^uint64(0), Epoch: 1 << 63, Prev: 12345678901234},
		{Kind: MsgHeartbeat, Prev: 7},
		{Kind: MsgHello, Origin: OriginOf("host:5006"), Epoch: 99},
	} {
		b := h.Append([]byte("prefix"))
		if len(b) != len("prefix")+HeaderSize || string(b[:6]) != "prefix" {
			t.Fatalf("Append(%+v) = %x", h, b)
		}
		got, err := ParseHeader(b[6:])
		if err != nil || got != h {
			t.Fatalf("ParseHeader(Append(%+v)) = %+v, %v", h, got, err)
		}
	}
}

func TestParseHeaderErrors(t *testing.T) {
	good := Header{Kind: MsgChange, Seq: 1}.Append(nil)
	for name, b := range map[string][]byte{
		"empty":        nil,
		"short":        good[:HeaderSize-1],
		"long":         append(append([]byte(nil), good...), 0),
		"kind 0":       append([]byte{WireVersion, 0}, good[2:]...),
		"kind 5":       append([]byte{WireVersion, 5}, good[2:]...),
		"envelope (1)": []byte(`{"topic": "bokehplot:d", "msg": "{}", "exclude": []}`),
	} {
		if h, err := ParseHeader(b); err == nil {
			t.Errorf("%s: ParseHeader(%x) = %+v", name, b, h)
		}
	}
	// Another version says so, whatever its length: the worker logs it as a mismatch.
	for _, b := range [][]byte{{1}, {3, 1, 0, 0}, append([]byte{9}, good[1:]...)} {
		var ve VersionError
		if _, err := ParseHeader(b); !errors.As(err, &ve) || ve.Version != int(b[0]) {
			t.Errorf("ParseHeader(%x) = %v, want a VersionError for %d", b, err, b[0])
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(Header{Kind: MsgChange, Seq: 1}.Append(nil))
	f.Add([]byte(`{"topic": "bokehplot:d"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if again := h.Append(nil); string(again[:2]) != string(b[:2]) || string(again[4:]) != string(b[4:]) {
			t.Fatalf("ParseHeader(%x) = %+v, which appends as %x", b, h, again)
		}
	})
}

func TestAckRequestTopics(t *testing.T) {
	req := ackRequestTopic("bokehplot:doc", 0xabc)
	topic, ok, legacy := ackRequest([]byte(req))
	if topic != "bokehplot:doc" || !ok || legacy {
		t.Fatalf("ackRequest(%q) = %q %v %v", req, topic, ok, legacy)
	}
	if got, ok := ackTopic([]byte(req)); got != "bokehplot:doc" || !ok {
		t.Fatalf("ackTopic(%q) = %q %v", req, got, ok)
	}
	// A version-1 worker's request: the nonce right after the NUL byte.
	topic, ok, legacy = ackRequest([]byte("bokehplot:doc\x000000000000000abc"))
	if topic != "bokehplot:doc" || ok || !legacy {
		t.Fatalf("version-1 request: %q %v %v", topic, ok, legacy)
	}
	for _, bad := range []string{"bokehplot:doc", "bokehplot:doc\x00", "nocolon\x00v2:0000000000000001", "\x00hello", "bokehplot:doc\x00xyz"} {
		if _, ok, legacy := ackRequest([]byte(bad)); ok || legacy {
			t.Errorf("ackRequest(%q) = %v %v", bad, ok, legacy)
		}
	}
	if ackVersion != "v"+string(rune('0'+WireVersion))+":" {
		t.Fatalf("ackVersion %q does not name wire format %d", ackVersion, WireVersion)
	}
}

func TestOriginOf(t *testing.T) {
	a, again := OriginOf("a:1"), OriginOf("a"+":1")
	if OriginOf("") != 0 || a == 0 || a != again || a == OriginOf("a:2") {
		t.Fatal("OriginOf: want 0 for no name, the same non-zero origin for the same name, another for another")
	}
}
