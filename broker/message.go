// Package broker carries model-change messages from API processes to websocket workers:
// the publisher interface, the ZeroMQ transport, the forwarder and the envelope format.
package broker

import (
	"bytes"
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
	// Frame, when not nil, is the websocket frame Topic + ":" + Payload, with Payload its
	// tail: a Subscriber decodes envelopes straight into this form so that a worker need
	// not copy a large payload again to frame it. Publishers ignore it.
	Frame []byte
	// Verbatim, when not nil, lists ranges of Payload (sorted, disjoint [start, end) byte
	// offsets) that read the same inside a JSON string, such as data columns of numbers:
	// AppendEnvelope copies them instead of escaping them byte by byte.
	Verbatim [][2]int
}

// AppendEnvelope appends the §5.6 envelope {"topic", "msg", "exclude"}, with the payload
// embedded as a JSON string; an acknowledgement adds "ack": true.
func (m Message) AppendEnvelope(dst []byte) []byte {
	dst = append(dst, `{"topic": `...)
	dst = rawjson.AppendString(dst, m.Topic)
	dst = append(dst, `, "msg": `...)
	// JSON escapes only (no HTML ones): the envelope is read by workers, never by a page.
	dst = rawjson.AppendTextVerbatim(dst, m.Payload, m.Verbatim)
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

// ParseEnvelope decodes a §5.6 envelope (and the "ack" marker of acknowledgements). b is
// not modified and the result does not share it.
func ParseEnvelope(b []byte) (Message, error) { return parseEnvelope(b, false) }

// parseEnvelope is ParseEnvelope; with inPlace it decodes the payload inside b itself, which
// the caller gives up: the result's Frame (and Payload, its tail) are then a slice of b.
// For a large modelpush this is most of a worker's work per message.
func parseEnvelope(b []byte, inPlace bool) (Message, error) {
	if inPlace {
		if m, ok, err := parseOwnEnvelope(b); ok {
			return m, err
		}
	}
	fields, _, err := rawjson.Fields(b)
	if err != nil {
		return Message{}, fmt.Errorf("envelope: %w", err)
	}
	var m Message
	var haveTopic bool
	var msg []byte // the payload's string literal, decoded last (in place it overwrites b)
	for _, f := range fields {
		switch f.Key {
		case "topic":
			if haveTopic {
				return Message{}, errors.New(`envelope: "topic" given twice`)
			}
			if m.Topic, haveTopic = rawjson.String(f.Value); !haveTopic {
				return Message{}, errors.New("envelope: topic and msg must be strings")
			}
		case "msg":
			if msg != nil {
				return Message{}, errors.New(`envelope: "msg" given twice`)
			}
			if len(f.Value) == 0 || f.Value[0] != '"' {
				return Message{}, errors.New("envelope: topic and msg must be strings")
			}
			msg = f.Value
		default:
			if err := m.setMember(f); err != nil {
				return Message{}, err
			}
		}
	}
	if !haveTopic || msg == nil {
		return Message{}, errors.New("envelope: topic and msg must be strings")
	}
	if !ValidTopic(m.Topic) {
		return Message{}, fmt.Errorf("envelope: topic %q is not <kind>:<value>", m.Topic)
	}
	// The frame starts len(topic)+1 bytes before the literal's contents, so that decoding
	// writes at or before the position it reads (escapes only ever shrink) and the frame
	// prefix only overwrites envelope text already decoded above. Otherwise (an envelope
	// with "msg" first, or a copy wanted) the frame gets a buffer of its own.
	raw := msg[1 : len(msg)-1]
	var frame []byte
	if off := rawjson.Offset(b, raw); inPlace && off >= len(m.Topic)+1 {
		start := off - len(m.Topic) - 1
		frame = b[start:start:len(b)]
	} else {
		frame = make([]byte, 0, len(m.Topic)+1+len(raw))
	}
	frame = append(append(frame, m.Topic...), ':')
	frame = rawjson.AppendUnescaped(frame, raw)
	m.Frame = frame[:len(frame):len(frame)]
	m.Payload = m.Frame[len(m.Topic)+1:]
	return m, nil
}

// setMember takes an envelope member other than topic and msg.
func (m *Message) setMember(f rawjson.Field) error {
	switch f.Key {
	case "exclude":
		elems, _, err := rawjson.Elements(f.Value)
		if err != nil {
			return fmt.Errorf("envelope exclude: %w", err)
		}
		m.Exclude = m.Exclude[:0]
		for _, e := range elems {
			id, ok := rawjson.String(e)
			if !ok {
				return errors.New("envelope exclude: not a list of strings")
			}
			m.Exclude = append(m.Exclude, id)
		}
	case "ack":
		m.Ack = string(f.Value) == "true"
	}
	return nil
}

// How AppendEnvelope (like the original's json.dumps) begins an envelope.
const (
	ownTopicPrefix = `{"topic": "`
	ownMsgKey      = `", "msg": "`
)

// parseOwnEnvelope decodes, in place, an envelope that begins as AppendEnvelope writes one
// ({"topic": "<plain topic>", "msg": "), validating and decoding the payload in one pass:
// reading 60 KB twice (validate, then decode) was a third of a worker's CPU per update.
// ok is false, with b untouched, for any other layout, which parseEnvelope then reads.
func parseOwnEnvelope(b []byte) (m Message, ok bool, err error) {
	if !bytes.HasPrefix(b, []byte(ownTopicPrefix)) {
		return m, false, nil
	}
	p := len(ownTopicPrefix)
	q := bytes.IndexByte(b[p:], '"')
	if q < 0 {
		return m, false, nil
	}
	q += p
	for _, c := range b[p:q] {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return m, false, nil // escapes or non-ASCII: the general reader decodes them
		}
	}
	if !bytes.HasPrefix(b[q:], []byte(ownMsgKey)) {
		return m, false, nil
	}
	m.Topic = string(b[p:q])
	if !ValidTopic(m.Topic) {
		return Message{}, true, fmt.Errorf("envelope: topic %q is not <kind>:<value>", m.Topic)
	}
	// The frame "<topic>:<payload>" is written from len(topic)+1 bytes before the payload's
	// literal, over envelope text already read (the topic was copied above).
	r := q + len(ownMsgKey)
	start := r - len(m.Topic) - 1
	w := start + copy(b[start:], m.Topic)
	b[w] = ':'
	next, end, err := rawjson.DecodeInPlace(b, r, w+1)
	if err != nil {
		return Message{}, true, fmt.Errorf("envelope msg: %w", err)
	}
	if err := m.setRest(b[next:]); err != nil {
		return Message{}, true, err
	}
	m.Frame = b[start:end:end]
	m.Payload = m.Frame[len(m.Topic)+1:]
	return m, true, nil
}

// setRest reads the members after "msg": rest is what follows its literal, up to the end of
// the envelope ("}" or ", ...}").
func (m *Message) setRest(rest []byte) error {
	rest = bytes.TrimLeft(rest, " \t\n\r")
	if len(rest) == 0 || (rest[0] != ',' && rest[0] != '}') {
		return errors.New(`envelope: expected ',' or '}' after msg`)
	}
	// The remaining members as an object of their own (a small copy: exclude, ack).
	obj := append([]byte{'{'}, rest...)
	if rest[0] == ',' {
		obj = append([]byte{'{'}, rest[1:]...)
	}
	fields, _, err := rawjson.Fields(obj)
	if err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	if rest[0] == ',' && len(fields) == 0 {
		return errors.New(`envelope: expected a member after ','`)
	}
	for _, f := range fields {
		if f.Key == "topic" || f.Key == "msg" {
			return fmt.Errorf("envelope: %q given twice", f.Key)
		}
		if err := m.setMember(f); err != nil {
			return err
		}
	}
	return nil
}

// ValidTopic reports whether topic has the form <kind>:<value> with exactly one colon, the
// only form BokehJS can split (§5.2), and no NUL byte (reserved for acknowledgement
// requests, see ack.go).
func ValidTopic(topic string) bool {
	i := strings.IndexByte(topic, ':')
	return i > 0 && i < len(topic)-1 && strings.IndexByte(topic[i+1:], ':') < 0 &&
		strings.IndexByte(topic, ackSep) < 0
}
