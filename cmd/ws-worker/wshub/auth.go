package wshub

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bokeh-go/bokeh-server/api/workerapi"
)

// Doc-key lookups: answers are cached briefly because every browser tab of a document
// subscribes with the same key, often all at once after a worker restart.
const (
	keyCacheTTL      = 5 * time.Second // a changed key takes effect this late
	missCacheTTL     = time.Second     // a just-created doc is found this late
	keyLookupTimeout = 5 * time.Second
	maxCachedDocs    = 10000
	maxKeysBody      = 64 << 10
)

// errNoAPI means the key lookup could not get an answer (the API is down or refuses the
// internal token); it is never cached.
var errNoAPI = errors.New("doc-key lookup failed")

type keyEntry struct {
	keys    workerapi.DocKeys
	found   bool
	expires time.Time
}

type keyCall struct {
	done  chan struct{}
	entry keyEntry
	err   error
}

// keyLookup asks the API for documents' keys (workerapi.DocKeysPath), caching answers and
// merging concurrent lookups of the same document into one request.
type keyLookup struct {
	base   string // API root URL ending in "/"
	token  string
	client *http.Client
	now    func() time.Time // replaced by tests

	mu       sync.Mutex
	cache    map[string]keyEntry
	inflight map[string]*keyCall
	users    map[userGrantKey]userGrant // answers of user-topic checks
}

func newKeyLookup(apiURL, secretKey string, client *http.Client) *keyLookup {
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	return &keyLookup{base: apiURL, token: workerapi.InternalToken(secretKey), client: client, now: time.Now,
		cache: make(map[string]keyEntry), inflight: make(map[string]*keyCall), users: make(map[userGrantKey]userGrant)}
}

// lookup returns the keys of docid and whether the document exists.
func (k *keyLookup) lookup(ctx context.Context, docid string) (workerapi.DocKeys, bool, error) {
	k.mu.Lock()
	if e, ok := k.cache[docid]; ok && k.now().Before(e.expires) {
		k.mu.Unlock()
		return e.keys, e.found, nil
	}
	call, running := k.inflight[docid]
	if !running {
		call = &keyCall{done: make(chan struct{})}
		k.inflight[docid] = call
		go k.fetchInto(docid, call)
	}
	k.mu.Unlock()
	select {
	case <-call.done:
		return call.entry.keys, call.entry.found, call.err
	case <-ctx.Done():
		return workerapi.DocKeys{}, false, ctx.Err()
	}
}

// fetchInto runs detached from any one caller, so that a waiter giving up (its websocket
// closed) does not fail the others.
func (k *keyLookup) fetchInto(docid string, call *keyCall) {
	ctx, cancel := context.WithTimeout(context.Background(), keyLookupTimeout)
	defer cancel()
	call.entry, call.err = k.fetch(ctx, docid)
	k.mu.Lock()
	delete(k.inflight, docid)
	if call.err == nil {
		k.store(docid, call.entry)
	}
	k.mu.Unlock()
	close(call.done)
}

// store caches an answer; called with mu held. The cache is bounded: expired entries go
// first, and if that is not enough it is emptied, which only costs extra lookups.
func (k *keyLookup) store(docid string, e keyEntry) {
	if len(k.cache) >= maxCachedDocs {
		now := k.now()
		for id, old := range k.cache {
			if now.After(old.expires) {
				delete(k.cache, id)
			}
		}
		if len(k.cache) >= maxCachedDocs {
			clear(k.cache)
		}
	}
	k.cache[docid] = e
}

func (k *keyLookup) fetch(ctx context.Context, docid string) (keyEntry, error) {
	u := k.base + workerapi.DocKeysPath + url.PathEscape(docid)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return keyEntry{}, fmt.Errorf("%w: %v", errNoAPI, err)
	}
	req.Header.Set(workerapi.InternalTokenHeader, k.token)
	resp, err := k.client.Do(req)
	if err != nil {
		return keyEntry{}, fmt.Errorf("%w: %v", errNoAPI, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysBody))
	if err != nil {
		return keyEntry{}, fmt.Errorf("%w: GET %s: %v", errNoAPI, u, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var keys workerapi.DocKeys
		if err := json.Unmarshal(body, &keys); err != nil {
			return keyEntry{}, fmt.Errorf("%w: GET %s: bad answer: %v", errNoAPI, u, err)
		}
		return keyEntry{keys: keys, found: true, expires: k.now().Add(keyCacheTTL)}, nil
	case http.StatusNotFound:
		return keyEntry{expires: k.now().Add(missCacheTTL)}, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return keyEntry{}, fmt.Errorf("%w: GET %s: %s: does --secret-key match the bokeh-server's?",
			errNoAPI, u, resp.Status)
	default:
		return keyEntry{}, fmt.Errorf("%w: GET %s: %s", errNoAPI, u, resp.Status)
	}
}

// keyMatches compares in constant time so that response timing does not reveal how much
// of a key an attacker guessed. Empty keys never match.
func keyMatches(auth string, keys workerapi.DocKeys) bool {
	match := 0
	for _, key := range []string{keys.APIKey, keys.ReadOnlyAPIKey} {
		if key != "" {
			match |= subtle.ConstantTimeCompare([]byte(auth), []byte(key))
		}
	}
	return match == 1
}

// User topics (bokehuser:<name>) carry a user's docchange notices; the API decides who may
// watch them (workerapi.UserTopicPath): in multi-user mode, the user's own pages and clients.
// Answers are cached like doc keys: a granted subscription stays possible for keyCacheTTL
// after the session ended, a refused one is asked again after missCacheTTL.
type userGrantKey struct{ name, auth string }

type userGrant struct {
	ok      bool
	expires time.Time
}

// userTopic reports whether auth grants a subscription to the bokehuser topic of name.
func (k *keyLookup) userTopic(ctx context.Context, name, auth string) (bool, error) {
	key := userGrantKey{name, auth}
	k.mu.Lock()
	if g, ok := k.users[key]; ok && k.now().Before(g.expires) {
		k.mu.Unlock()
		return g.ok, nil
	}
	k.mu.Unlock()
	ok, err := k.fetchUserTopic(ctx, name, auth)
	if err != nil {
		return false, err
	}
	ttl := missCacheTTL
	if ok {
		ttl = keyCacheTTL
	}
	k.mu.Lock()
	if len(k.users) >= maxCachedDocs {
		clear(k.users)
	}
	k.users[key] = userGrant{ok: ok, expires: k.now().Add(ttl)}
	k.mu.Unlock()
	return ok, nil
}

func (k *keyLookup) fetchUserTopic(ctx context.Context, name, auth string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, keyLookupTimeout)
	defer cancel()
	u := k.base + workerapi.UserTopicPath + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("%w: %v", errNoAPI, err)
	}
	req.Header.Set(workerapi.InternalTokenHeader, k.token)
	if auth != "" {
		req.Header.Set(workerapi.SubscribeAuthHeader, auth)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("%w: %v", errNoAPI, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxKeysBody))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		return true, nil
	case http.StatusForbidden:
		return false, nil
	case http.StatusUnauthorized:
		return false, fmt.Errorf("%w: GET %s: %s: does --secret-key match the bokeh-server's?", errNoAPI, u, resp.Status)
	default:
		return false, fmt.Errorf("%w: GET %s: %s", errNoAPI, u, resp.Status)
	}
}
