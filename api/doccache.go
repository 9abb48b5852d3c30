package api

import (
	"sync"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
)

// Doc records are read by every document request but almost never change: keys are fixed
// at creation, rw_users/r_users have no API, and published only goes from false to true.
// Caching them briefly saves a storage round trip per request; another API process's
// publish becomes visible here within docCacheTTL.
const (
	docCacheTTL     = 2 * time.Second
	docCacheEntries = 10000
)

type docCache struct {
	mu sync.Mutex
	m  map[string]cachedDoc
}

type cachedDoc struct {
	doc     storage.Doc
	expires time.Time
}

func newDocCache() *docCache { return &docCache{m: map[string]cachedDoc{}} }

func (c *docCache) get(docid string, now time.Time) (storage.Doc, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[docid]
	if !ok || now.After(e.expires) {
		return storage.Doc{}, false
	}
	return e.doc, true
}

func (c *docCache) put(doc storage.Doc, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= docCacheEntries {
		for k, e := range c.m {
			if now.After(e.expires) || len(c.m) >= docCacheEntries {
				delete(c.m, k)
			}
		}
	}
	c.m[doc.DocID] = cachedDoc{doc: doc, expires: now.Add(docCacheTTL)}
}

// drop forgets docid (the document was deleted).
func (c *docCache) drop(docid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, docid)
}
