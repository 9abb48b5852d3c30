// Package broker carries model-change messages from API processes to websocket workers
// over ZeroMQ, and tells the workers when they may have missed one.
package broker

import "strings"

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
// frame Topic + ":" + Payload.
type Message struct {
	Topic   string
	Payload []byte
}

// ValidTopic reports whether topic has the form <kind>:<value> with exactly one colon, the
// only form BokehJS can split (§5.2), and no NUL byte (reserved for acknowledgement
// requests and hellos, see ack.go and wire.go).
func ValidTopic(topic string) bool {
	i := strings.IndexByte(topic, ':')
	return i > 0 && i < len(topic)-1 && strings.IndexByte(topic[i+1:], ':') < 0 &&
		strings.IndexByte(topic, ackSep) < 0
}
