package broker

import (
	"bytes"
	"fmt"
	"strconv"
)

// Subscription acknowledgements.
//
// A ZeroMQ subscription travels from the SUB socket to the publisher (through a forwarder,
// if any) asynchronously, and a message published before it arrives is silently dropped.
// So that a worker can tell a websocket client "subscribed" only once messages actually
// flow, a Subscriber follows every new subscription to a topic T with a subscription to a
// request topic of its own, T + "\x00v2:" + nonce. Subscriptions from one socket travel in
// order on one path, so whoever sees the request already filters T for that socket.
//
// A ZMQPublisher (an XPUB socket in verbose mode, which shows it every subscription) answers
// each request at once, on the socket that sends every published message and under the
// lock that orders them, with [request topic, MsgAck header, ""]. The header carries the
// publisher's last change on T (wire.go), so an answer doubles as a heartbeat. Once the
// Subscriber has that answer, every message the publisher sends on T afterwards reaches it,
// in order. The request topic names one Subscriber's one subscription, so an answer that
// is still in flight after an unsubscribe and a new subscribe of T cannot be mistaken for
// the answer to the new one.
//
// The request stays subscribed while T is: a publisher that connects later (a restarted
// API, or one that reached the forwarder late) answers it too, and so tells the subscriber
// its last change on T.
//
// Through a forwarder the same holds for every publisher connected to it: the forwarder
// subscribes to everything upstream and filters for its subscribers itself, and an answer
// that reached a subscriber passed the forwarder after the forwarder had T for it.
//
// The request topic starts with T, so ZeroMQ (which matches subscriptions as byte prefixes)
// also shows answers to other subscribers of T; they are recognised by the NUL byte, which
// no valid topic contains, and only checked as heartbeats.

// ackSep separates a topic from the rest of an acknowledgement request.
const ackSep = 0

// ackVersion follows ackSep in the requests of this wire format; a request of a version-1
// worker has its 16 hex digits of nonce right after ackSep.
const ackVersion = "v2:"

// ackRequestTopic is the request topic for one subscription to topic.
func ackRequestTopic(topic string, nonce uint64) string {
	return fmt.Sprintf("%s\x00%s%016x", topic, ackVersion, nonce)
}

// ackRequest recognises a request topic and returns the topic it asks about; legacy
// reports a request of a version-1 worker, which cannot read our answer.
func ackRequest(sub []byte) (topic string, ok, legacy bool) {
	i := bytes.IndexByte(sub, ackSep)
	if i < 0 || i == len(sub)-1 {
		return "", false, false
	}
	topic = string(sub[:i])
	if !ValidTopic(topic) {
		return "", false, false
	}
	rest := sub[i+1:]
	if !bytes.HasPrefix(rest, []byte(ackVersion)) {
		_, err := strconv.ParseUint(string(rest), 16, 64)
		return topic, false, len(rest) == 16 && err == nil
	}
	return topic, true, false
}

// ackTopic returns the topic an acknowledgement's topic frame answers about.
func ackTopic(frame []byte) (string, bool) {
	i := bytes.IndexByte(frame, ackSep)
	if i <= 0 {
		return "", false
	}
	return string(frame[:i]), true
}
