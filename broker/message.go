// Package broker carries model-change messages from API processes to websocket workers:
// the publisher interface, the ZeroMQ transport, the forwarder and the envelope format.
package broker

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bokeh-go/bokeh-server/storage/rawjson"
)

// Topic kinds (PROTOCOL.md §5.2, §5.4).
const (
	KindPlot = "bokehplot"
	KindUser = "bokehuser"
)

// PlotTopic is the topic of a document's (or overlay's) model pushes.
func PlotTopic(id string) string { return KindPlot + ":" + id }

// UserTopic is the topic of a user's docchange notices.
func UserTopic(username string) string { return KindUser + ":" + username }

// Message is one published change: websocket clients subscribed to Topic receive the text
// frame Topic + ":" + Payload, unless their client id is in Exclude.
type Message struct {
	Topic   string
	Payload []byte
	Exclude []string
	// Ack marks a subscription acknowledgement that a ZMQPublisher sends to a Subscriber
	// (see AckTopic); it is never delivered to websocket clients.
	Ack bool
}

// AppendEnvelope appends the §5.6 envelope {"topic", "msg", "exclude"}, with the payload
// embedded as a JSON string; an acknowledgement adds "ack": true.
func (m Message) AppendEnvelope(dst []byte) []byte {
	dst = append(dst, `{"topic": `...)
	dst = rawjson.AppendString(dst, m.Topic)
	dst = append(dst, `, "msg": `...)
	dst = rawjson.AppendString(dst, string(m.Payload))
	dst = append(dst, `, "exclude": [`...)
	for i, id := range m.Exclude {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = rawjson.AppendString(dst, id)
	}
	if m.Ack {
		return append(dst, `], "ack": true}`...)
	}
	return append(dst, "]}"...)
}

// ParseEnvelope decodes a §5.6 envelope (and the "ack" marker of acknowledgements).
func ParseEnvelope(b []byte) (Message, error) {
	fields, _, err := rawjson.Fields(b)
	if err != nil {
		return Message{}, fmt.Errorf("envelope: %w", err)
	}
	var m Message
	var haveTopic, haveMsg bool
	for _, f := range fields {
		switch f.Key {
		case "topic":
			m.Topic, haveTopic = rawjson.String(f.Value)
		case "msg":
			var s string
			s, haveMsg = rawjson.String(f.Value)
			m.Payload = []byte(s)
		case "exclude":
			elems, _, err := rawjson.Elements(f.Value)
			if err != nil {
				return Message{}, fmt.Errorf("envelope exclude: %w", err)
			}
			for _, e := range elems {
				id, ok := rawjson.String(e)
				if !ok {
					return Message{}, errors.New("envelope exclude: not a list of strings")
				}
				m.Exclude = append(m.Exclude, id)
			}
		case "ack":
			m.Ack = string(f.Value) == "true"
		}
	}
	if !haveTopic || !haveMsg {
		return Message{}, errors.New("envelope: topic and msg must be strings")
	}
	if !ValidTopic(m.Topic) {
		return Message{}, fmt.Errorf("envelope: topic %q is not <kind>:<value>", m.Topic)
	}
	return m, nil
}

// ValidTopic reports whether topic has the form <kind>:<value> with exactly one colon, the
// only form BokehJS can split (§5.2), and no NUL byte (reserved for acknowledgement
// requests, see ack.go).
func ValidTopic(topic string) bool {
	i := strings.IndexByte(topic, ':')
	return i > 0 && i < len(topic)-1 && strings.IndexByte(topic[i+1:], ':') < 0 &&
		strings.IndexByte(topic, ackSep) < 0
}
