package storage

import (
	"encoding/json"
	"fmt"
)

// Ref is a model reference {"type": T, "id": I}.
type Ref struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Doc is the server-side record of a document (PROTOCOL.md §3.3), stored as JSON under
// model:doc:<docid>.
type Doc struct {
	DocID          string   `json:"docid"`
	Title          string   `json:"title"`
	RWUsers        []string `json:"rw_users"`
	RUsers         []string `json:"r_users"`
	PlotContextRef Ref      `json:"plot_context_ref"`
	APIKey         string   `json:"apikey"`
	ReadOnlyAPIKey string   `json:"readonlyapikey"`
	Published      bool     `json:"published"`
}

// DocEntry is one element of a user's document list.
type DocEntry struct {
	DocID string `json:"docid"`
	Title string `json:"title"`
}

// UnmarshalJSON also accepts the bare docid strings of old records; their Title is left
// empty for the caller to fill in from the Doc record (§3.4 load-time migration).
func (e *DocEntry) UnmarshalJSON(b []byte) error {
	var id string
	if err := json.Unmarshal(b, &id); err == nil {
		*e = DocEntry{DocID: id}
		return nil
	}
	type plain DocEntry
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("doc entry: %w", err)
	}
	*e = DocEntry(p)
	return nil
}

// User is the record of an account (§3.4), stored as JSON under model:user:<username>.
// PassHash is a bcrypt hash, or the legacy werkzeug form sha1$<salt>$<hex>. Sessions lists
// the signed-in browsers and clients (not in the original's records); a session cookie is
// only honoured while its entry is here, so logging out ends it everywhere at once.
type User struct {
	Username string     `json:"username"`
	PassHash string     `json:"passhash"`
	APIKey   string     `json:"apikey"`
	Docs     []DocEntry `json:"docs"`
	Sessions []Session  `json:"sessions,omitempty"`
}

// Session is one login of a user: a hash of the session id its cookie carries (never the id
// itself, so the records do not hold usable credentials) and when it began (Unix seconds).
type Session struct {
	IDHash string `json:"id"`
	Issued int64  `json:"issued"`
}

// MarshalJSON writes empty lists as [] (never null), as the original did.
func (d Doc) MarshalJSON() ([]byte, error) {
	type plain Doc
	p := plain(d)
	if p.RWUsers == nil {
		p.RWUsers = []string{}
	}
	if p.RUsers == nil {
		p.RUsers = []string{}
	}
	return json.Marshal(p)
}

// MarshalJSON writes an empty docs list as [].
func (u User) MarshalJSON() ([]byte, error) {
	type plain User
	p := plain(u)
	if p.Docs == nil {
		p.Docs = []DocEntry{}
	}
	return json.Marshal(p)
}
