// Package workerapi is the HTTP contract between the API and its websocket workers: the
// internal routes a worker calls (document keys, user-topic grants) and their token.
package workerapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Workers learn a document's keys from the API (so websocket auth works with every storage
// backend) at DocKeysPath + <docid>, relative to the API's root URL including its prefix. The
// request carries InternalTokenHeader; the answer is DocKeys as JSON, 404 for an unknown doc.
const (
	DocKeysPath         = "bokeh/internal/dockeys/"
	InternalTokenHeader = "X-Bokeh-Internal-Token"
)

// Workers ask the API at UserTopicPath + <username> whether a subscription to that user's
// bokehuser topic is granted, passing the subscribe request's auth in SubscribeAuthHeader:
// 204 yes, 403 no. In multi-user mode it needs the user's credentials; in single-user mode
// every user topic is open.
const (
	UserTopicPath       = "bokeh/internal/usertopic/"
	SubscribeAuthHeader = "X-Bokeh-Subscribe-Auth"
)

// DocKeys are the keys that authorize a websocket subscription to a document (§5.3).
type DocKeys struct {
	APIKey         string `json:"apikey"`
	ReadOnlyAPIKey string `json:"readonlyapikey"`
}

// InternalToken derives the token API and workers exchange from the shared secret key, so the
// secret that signs session cookies never travels over the wire.
func InternalToken(secretKey string) string {
	mac := hmac.New(sha256.New, []byte(secretKey))
	mac.Write([]byte("bokeh-server internal api v1"))
	return hex.EncodeToString(mac.Sum(nil))
}
