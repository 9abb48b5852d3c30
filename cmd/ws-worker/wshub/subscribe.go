package wshub

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/bokeh-go/bokeh-server/broker"
)

// handleSubscribe applies the 0.8.2 rule (§5.3) and answers: bokehplot topics need the
// document's apikey or readonlyapikey, except public-mode overlay ids (temporary-<hex>);
// bokehuser topics need, in multi-user mode, that user's credentials (not in 0.8.2: anyone
// could watch anyone's document list change); every other kind is open. It returns the error frame of a refusal, or nil when the
// success reply is queued already (see Hub.subscribe). Failures keep the connection, where
// 0.8.x crashed the handler and dropped it (§8 item 3).
func (h *Hub) handleSubscribe(ctx context.Context, c *client, topic, auth string) []byte {
	if !broker.ValidTopic(topic) {
		h.counters.authFailures.Add(1)
		return errorFrame(topic, errInvalidTopic)
	}
	refusal := ""
	switch kind, value := topicKind(topic); kind {
	case broker.KindPlot:
		refusal = h.authorizePlot(ctx, value, auth)
	case broker.KindUser:
		refusal = h.authorizeUser(ctx, value, auth)
	}
	if refusal != "" {
		c.logger().Info("subscribe refused", "topic", topic, "reason", refusal)
		return errorFrame(topic, refusal)
	}
	if err := h.subscribe(ctx, c, topic); err != nil {
		if errors.Is(err, errTooMany) {
			return errorFrame(topic, errTooManyTopics)
		}
		c.logger().Warn("zmq subscribe failed", "topic", topic, "err", err)
		return errorFrame(topic, errShuttingDown)
	}
	return nil
}

// authorizePlot returns "" when auth grants the bokehplot value, else the error text.
func (h *Hub) authorizePlot(ctx context.Context, value, auth string) string {
	if strings.HasPrefix(value, temporaryPrefix) {
		if validTemporary(value) {
			return ""
		}
		h.counters.authFailures.Add(1)
		return errInvalidTopic
	}
	keys, found, err := h.keys.lookup(ctx, value)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			if ok, suppressed := h.apiErrLog.Allow(time.Second); ok {
				h.log.Warn("doc-key lookup failed", "docid", value, "err", err, "suppressed", suppressed)
			}
		}
		return errAPIUnreachable
	case !found:
		h.counters.authFailures.Add(1)
		return errUnknownDoc
	case !keyMatches(auth, keys):
		h.counters.authFailures.Add(1)
		return errUnauthorized
	}
	return ""
}

// authorizeUser returns "" when auth grants the bokehuser topic of name, else the error text.
func (h *Hub) authorizeUser(ctx context.Context, name, auth string) string {
	ok, err := h.keys.userTopic(ctx, name, auth)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			if allowed, suppressed := h.apiErrLog.Allow(time.Second); allowed {
				h.log.Warn("user-topic check failed", "user", name, "err", err, "suppressed", suppressed)
			}
		}
		return errAPIUnreachable
	case !ok:
		h.counters.authFailures.Add(1)
		return errUnauthorized
	}
	return ""
}
