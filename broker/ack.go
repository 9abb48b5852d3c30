package broker

import (
	"bytes"
	"fmt"
)

// Subscription acknowledgements.
//
// A ZeroMQ subscription travels from the SUB socket to the publisher (through a forwarder,
// if any) asynchronously, and a message published before it arrives is silently dropped.
// So that a worker can tell a websocket client "subscribed" only once messages actually
// flow, a Subscriber follows every new subscription to a topic T with a subscription to a
// request topic of its own, T + "\x00" + nonce. Subscriptions from one socket travel in
// order on one path, so whoever sees the request already filters T for that socket.
//
// A ZMQPublisher (an XPUB socket in verbose mode, which shows it every subscription) answers
// each request at once, on the socket that sends every published message and under the
// lock that orders them, with the frames
// [request topic, {"topic": T, "msg": "", "exclude": [], "ack": true}]. Once the
// Subscriber has that answer, every message the publisher sends on T afterwards reaches it,
// in order. The request topic names one Subscriber's one subscription, so an answer that
// is still in flight after an unsubscribe and a new subscribe of T cannot be mistaken for
// the answer to the new one.
//
// Through a forwarder the same holds for every publisher connected to it: the forwarder
// subscribes to everything upstream and filters for its subscribers itself, and an answer
// that reached a subscriber passed the forwarder after the forwarder had T for it.
//
// The request topic starts with T, so ZeroMQ (which matches subscriptions as byte prefixes)
// also shows answers to other subscribers of T; they are recognised by the NUL byte, which
// no valid topic contains, and ignored. Workers built before acknowledgements existed drop
// them the same way, as messages for a topic nobody watches.

// ackSep separates a topic from the nonce in an acknowledgement request.
const ackSep = 0

// ackRequestTopic is the request topic for one subscription to topic.
func ackRequestTopic(topic string, nonce uint64) string {
	return fmt.Sprintf("%s\x00%016x", topic, nonce)
}

// ackRequest recognises a request topic and returns the topic it asks about.
func ackRequest(sub []byte) (topic string, ok bool) {
	i := bytes.IndexByte(sub, ackSep)
	if i < 0 || i == len(sub)-1 {
		return "", false
	}
	topic = string(sub[:i])
	return topic, ValidTopic(topic)
}

// isAckTopic reports whether a topic frame carries an acknowledgement.
func isAckTopic(frame []byte) bool { return bytes.IndexByte(frame, ackSep) >= 0 }
