package broker

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
)

// The wire format between publishers, the forwarder and subscribers.
//
// Every message is three ZeroMQ frames, [topic, header, payload]:
//
//   - topic: what subscribers filter on (ZeroMQ matches byte prefixes; a Subscriber checks
//     the exact topic). An acknowledgement carries the request topic it answers (ack.go), a
//     hello HelloTopic.
//
//   - header: HeaderSize bytes, integers big-endian:
//
//     0       format version (WireVersion)
//     1       kind: MsgChange, MsgAck, MsgHeartbeat or MsgHello
//     2..3    reserved, zero
//     4..11   origin: a hash of the publisher's stable name (WithOrigin), the same after a restart
//     12..19  epoch: random, new at every start of a publisher
//     20..27  seq: a change's number; a publisher counts its changes over all topics from 1
//     28..35  prev: for a change, the seq of the publisher's previous change on the same topic;
//     for an acknowledgement or heartbeat, the seq of its last change on the topic;
//     0 when there is none (or the publisher has forgotten an idle topic)
//
//   - payload: a change's payload, exactly the bytes a browser receives after "topic:";
//     empty in the other kinds.
//
// prev links each topic's changes into a chain, a per-topic sequence in linked form: a
// subscriber that knows the last change of a publisher on a topic sees any change it
// missed in between as a broken link. Unlike a counter per topic it survives the publisher
// forgetting idle topics (their chain simply restarts at prev 0), so the publisher's memory
// stays bounded by its recently active topics. The forwarder passes the frames unchanged.
const (
	// WireVersion is the format described above. Version 1 was the JSON envelope of
	// PROTOCOL.md §5.6 in a second frame; a worker receiving it, or a publisher receiving an
	// acknowledgement request of a version-1 worker, logs the mismatch.
	WireVersion = 2
	// HeaderSize is the length of the header frame.
	HeaderSize = 36
)

// MsgKind says what a message is.
type MsgKind byte

// The kinds of message.
const (
	// MsgChange is a published change, delivered to the topic's websocket clients.
	MsgChange MsgKind = 1
	// MsgAck answers a subscriber's acknowledgement request (ack.go).
	MsgAck MsgKind = 2
	// MsgHeartbeat repeats a publisher's last change on a topic, so that a subscriber
	// notices when that change went missing although nothing follows it (heartbeat.go).
	MsgHeartbeat MsgKind = 3
	// MsgHello announces a publisher (origin and epoch) to the subscribers of HelloTopic.
	MsgHello MsgKind = 4
)

func (k MsgKind) String() string {
	switch k {
	case MsgChange:
		return "change"
	case MsgAck:
		return "ack"
	case MsgHeartbeat:
		return "heartbeat"
	case MsgHello:
		return "hello"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

// HelloTopic is the topic of hellos. Every Subscriber subscribes to it, and a publisher
// says hello whenever a subscription to it (or to everything, as a forwarder's) arrives:
// a subscriber thus learns every publisher's epoch, and that one restarted, even before
// it publishes anything. The NUL byte keeps it apart from every valid topic.
const HelloTopic = "\x00hello"

// Header is the decoded header frame.
type Header struct {
	Kind   MsgKind
	Origin uint64
	Epoch  uint64
	Seq    uint64
	Prev   uint64
}

// Append appends the header frame to dst.
func (h Header) Append(dst []byte) []byte {
	dst = append(dst, WireVersion, byte(h.Kind), 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, h.Origin)
	dst = binary.BigEndian.AppendUint64(dst, h.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, h.Seq)
	return binary.BigEndian.AppendUint64(dst, h.Prev)
}

// VersionError is a message of another wire format.
type VersionError struct{ Version int }

func (e VersionError) Error() string {
	return fmt.Sprintf("wire format %d, this program speaks %d: run the same bokeh-server release on every machine", e.Version, WireVersion)
}

// ParseHeader decodes a header frame.
func ParseHeader(b []byte) (Header, error) {
	if len(b) > 0 && b[0] != WireVersion {
		return Header{}, VersionError{Version: int(b[0])}
	}
	if len(b) != HeaderSize {
		return Header{}, fmt.Errorf("header of %d bytes, want %d", len(b), HeaderSize)
	}
	h := Header{Kind: MsgKind(b[1]), Origin: binary.BigEndian.Uint64(b[4:]),
		Epoch: binary.BigEndian.Uint64(b[12:]), Seq: binary.BigEndian.Uint64(b[20:]),
		Prev: binary.BigEndian.Uint64(b[28:])}
	if h.Kind < MsgChange || h.Kind > MsgHello {
		return Header{}, fmt.Errorf("unknown message kind %d", b[1])
	}
	return h, nil
}

// OriginOf is the origin of a publisher named name: the same name gives the same origin,
// so subscribers can tell a restarted publisher (a new epoch of a known origin) from a new
// one. "" gives 0, an anonymous publisher whose restarts are not recognised.
func OriginOf(name string) uint64 {
	if name == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return max(h.Sum64(), 1)
}
