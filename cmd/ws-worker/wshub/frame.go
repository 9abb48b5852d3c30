package wshub

import (
	"encoding/json"
	"errors"
	"strings"
)

// clientFrame is what a browser sends (§5.3); BokehJS only ever sends subscribe frames.
type clientFrame struct {
	msgtype string
	topic   string
	auth    string // null, absent or not a string: no key
}

var errFrame = errors.New("client frame is not a JSON object with a string msgtype")

// parseClientFrame decodes a client→server frame. Only msgtype is required; a subscribe
// frame's topic is checked by the caller so that it can answer on that topic. Members are
// matched exactly, as the original's Python did.
func parseClientFrame(data []byte) (clientFrame, error) {
	members, err := jsonMembers(data)
	if err != nil {
		return clientFrame{}, err
	}
	var f clientFrame
	var haveType bool
	f.msgtype, haveType = jsonString(members["msgtype"])
	f.topic, _ = jsonString(members["topic"])
	f.auth, _ = jsonString(members["auth"])
	if !haveType {
		return clientFrame{}, errFrame
	}
	return f, nil
}

// jsonMembers splits a JSON object into its members.
func jsonMembers(data []byte) (map[string]json.RawMessage, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return nil, err
	}
	if members == nil {
		return nil, errFrame // null
	}
	return members, nil
}

// jsonString decodes a member that is a string; ok is false for anything else.
func jsonString(v json.RawMessage) (s string, ok bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	return s, json.Unmarshal(v, &s) == nil
}

// appendJSONString appends s as a JSON string literal. encoding/json also escapes <, > and
// &, where Python's json.dumps would not; replies carry topics and client ids, which never
// hold those in practice.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

const (
	temporaryPrefix = "temporary-"
	// Public-mode overlay ids: BokehJS 0.8.2 makes 32 random hex digits. Fewer would let
	// one viewer guess another's id and watch (or, at the API, write) their scratch copy.
	minTemporaryHex = 32
	maxTemporaryHex = 64
)

// validTemporary reports whether a bokehplot value is a public-mode overlay id:
// "temporary-" followed by 32 to 64 hex digits.
func validTemporary(value string) bool {
	hex, ok := strings.CutPrefix(value, temporaryPrefix)
	if !ok || len(hex) < minTemporaryHex || len(hex) > maxTemporaryHex {
		return false
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Error texts of subscribe replies.
const (
	errUnauthorized   = "unauthorized"
	errUnknownDoc     = "unknown document"
	errInvalidTopic   = "invalid topic"
	errTooManyTopics  = "too many subscriptions"
	errAPIUnreachable = "cannot check document keys: bokeh-server API unreachable"
	errShuttingDown   = "server shutting down"
)

// successFrame is the 0.8.2 reply to an accepted subscribe, byte for byte.
func successFrame(topic, clientID string) []byte {
	b := make([]byte, 0, 2*len(topic)+len(clientID)+80)
	b = append(b, topic...)
	b = append(b, `:{"msgtype": "status", "status": ["subscribesuccess", `...)
	b = appendJSONString(b, topic)
	b = append(b, ", "...)
	b = appendJSONString(b, clientID)
	return append(b, "]}"...)
}

// errorFrame is the 0.8.2 reply to a refused subscribe.
func errorFrame(topic, msg string) []byte {
	b := make([]byte, 0, len(topic)+len(msg)+40)
	b = append(b, topic...)
	b = append(b, `:{"msgtype": "error", "error_msg": `...)
	b = appendJSONString(b, msg)
	return append(b, '}')
}

// topicKind returns the part of a valid topic before the colon.
func topicKind(topic string) (kind, value string) {
	kind, value, _ = strings.Cut(topic, ":")
	return kind, value
}

// deliverableOnPlot reports whether BokehJS can handle a payload on a bokehplot topic: it
// throws on any msgtype other than modelpush and status (§5.4), or on text that is not JSON.
func deliverableOnPlot(payload []byte) bool {
	// Fast path for the servers' own encodings, so that a large modelpush is not scanned.
	for _, prefix := range []string{`{"msgtype": "modelpush"`, `{"msgtype":"modelpush"`} {
		if len(payload) > len(prefix) && string(payload[:len(prefix)]) == prefix &&
			(payload[len(prefix)] == ',' || payload[len(prefix)] == '}') {
			return true
		}
	}
	members, err := jsonMembers(payload)
	if err != nil {
		return false
	}
	t, _ := jsonString(members["msgtype"])
	return t == "modelpush" || t == "status"
}
