package broker

// Publisher sends messages towards websocket workers. Publish never blocks the caller on a
// slow or absent subscriber: what cannot be sent is dropped and counted, and subscribers
// learn of the drop (see wire.go). Messages from one Publisher are delivered in Publish
// order. Publish may keep m.Payload until it is sent: the caller must not modify it
// afterwards.
type Publisher interface {
	Publish(m Message)
	Stats() PublishStats
	Close() error
}

// PublishStats counts a publisher's messages. Acks and Heartbeats count the subscription
// acknowledgements and heartbeats a ZMQPublisher sent (they are not in Published).
type PublishStats struct {
	Published  uint64
	Dropped    uint64
	Acks       uint64
	Heartbeats uint64
}
