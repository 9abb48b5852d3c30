package api

import (
	"crypto/subtle"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/storage"
)

// Request headers of §2.1.
const (
	headerUser       = "BOKEHUSER"
	headerUserAPIKey = "BOKEHUSER-API-KEY"
	headerDocAPIKey  = "BOKEH-API-KEY"
	headerTempPrefix = "temporary-"
)

// defaultUser is the single-user mode account (§2.2); its apikey is the well-known "nokey".
const (
	defaultUsername = "defaultuser"
	defaultAPIKey   = "nokey"
)

// tempIDPattern is the shape of BokehJS 0.8's copy-on-write ids (temporary- + 32 hex
// digits): checking it keeps a TMP value from ever naming something else (§3.8, §8 item 19),
// and its length keeps one viewer's scratch copy (and its websocket topic) from being
// guessed by another.
var tempIDPattern = regexp.MustCompile(`^temporary-[0-9A-Fa-f]{32,64}$`)

// currentUser returns the requesting user (§2.2), or nil when there is none.
func (s *Server) currentUser(c echo.Context) (*storage.User, error) {
	u, _, err := s.currentSession(c)
	return u, err
}

// currentSession is currentUser plus the id of the session when the user came with a
// session cookie ("" otherwise). A cookie of an ended session counts for nothing.
func (s *Server) currentSession(c echo.Context) (*storage.User, string, error) {
	ctx := c.Request().Context()
	if !s.cfg.MultiUser {
		u, err := s.defaultUser(ctx)
		return &u, "", err
	}
	if name, sid, ok := s.sessionFromCookie(c.Request()); ok {
		u, err := s.loadUser(ctx, name)
		switch {
		case err != nil && !isNotFound(err):
			return nil, "", err
		case err == nil && liveSession(u, hashSessionID(sid), time.Now()):
			return &u, sid, nil
		}
	}
	u, err := s.userFromKeyHeaders(c)
	return u, "", err
}

// userFromKeyHeaders is the BOKEHUSER + BOKEHUSER-API-KEY identity of the Python client.
func (s *Server) userFromKeyHeaders(c echo.Context) (*storage.User, error) {
	ctx := c.Request().Context()
	key := c.Request().Header.Get(headerUserAPIKey)
	name := c.Request().Header.Get(headerUser)
	// The single-user account's public key must not open a multi-user server (§8 item 2).
	if key == "" || name == "" || key == defaultAPIKey {
		return nil, nil
	}
	u, err := s.loadUser(ctx, name)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(u.APIKey), []byte(key)) != 1 {
		return nil, nil
	}
	return &u, nil
}

// requireUser is the "L" check of API routes: a current user or 401. Such routes read or
// change a user's private data, so pages of other sites are refused.
func (s *Server) requireUser(c echo.Context) (*storage.User, error) {
	if err := s.refuseForeign(c); err != nil {
		return nil, err
	}
	u, err := s.currentUser(c)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, errLoginNeeded
	}
	return u, nil
}

// tempID returns the copy-on-write id of the request (§3.8), "" when absent.
func tempID(c echo.Context, docid string) (string, error) {
	tmp := c.Request().Header.Get(headerTempPrefix + docid)
	if tmp == "" {
		return "", nil
	}
	if !tempIDPattern.MatchString(tmp) || tmp == docid {
		return "", badRequest("header %s%s: %q is not a temporary id (temporary- followed by 32 to 64 hex digits)", headerTempPrefix, docid, tmp)
	}
	return tmp, nil
}

// access is what a request may do with one document.
type access struct {
	doc    storage.Doc
	user   *storage.User
	temp   string // copy-on-write id, "" for none
	viewer string // with a temp: who writes the scratch copy, for its quotas
	read   bool
	write  bool // write without TMP (the real document)
}

// scope is where this request's writes go: the viewer's overlay when a TMP was sent.
func (a *access) scope() storage.Scope {
	return storage.Scope{DocID: a.doc.DocID, Temp: a.temp}
}

// writeStar is "W*": with a TMP, reading suffices and writes go to the overlay.
func (a *access) writeStar() bool {
	if a.temp != "" {
		return a.read
	}
	return a.write
}

// authorize loads docid and computes the request's permissions on it (§2.2). useTemp says
// whether the route honours the temporary-<docid> header (R*/W* routes).
func (s *Server) authorize(c echo.Context, docid string, useTemp bool) (*access, error) {
	ctx := c.Request().Context()
	doc, err := s.loadDoc(ctx, docid)
	if err != nil {
		return nil, err
	}
	a := &access{doc: doc}
	if useTemp {
		if a.temp, err = tempID(c, docid); err != nil {
			return nil, err
		}
		if a.temp != "" {
			a.viewer = viewerKey(c.RealIP())
		}
	}
	if s.foreign(c) {
		// A page of another site gets what any anonymous embedder gets: a published
		// document, read and scratch copies of it (drive-by protection, crosssite.go).
		if !doc.Published {
			return nil, s.errCrossSite(c)
		}
		a.read = true
		return a, nil
	}
	if !s.cfg.MultiUser {
		// 0.8.x single-user mode grants everything (§2.2, §3.6).
		a.read, a.write = true, true
		return a, nil
	}
	if a.user, err = s.currentUser(c); err != nil {
		return nil, err
	}
	key := c.Request().Header.Get(headerDocAPIKey)
	if key != "" {
		a.write = keyEquals(key, doc.APIKey)
	} else {
		a.write = a.user != nil && slices.Contains(doc.RWUsers, a.user.Username)
	}
	switch {
	case doc.Published || a.write:
		a.read = true
	case key != "":
		a.read = keyEquals(key, doc.ReadOnlyAPIKey)
	default:
		a.read = a.user != nil && slices.Contains(doc.RUsers, a.user.Username)
	}
	return a, nil
}

// authorizeRead is the R and R* checks.
func (s *Server) authorizeRead(c echo.Context, docid string, useTemp bool) (*access, error) {
	a, err := s.authorize(c, docid, useTemp)
	if err != nil {
		return nil, err
	}
	if !a.read {
		return nil, errUnauthorized
	}
	return a, nil
}

// authorizeWrite is the W* check (useTemp) or the plain W check.
func (s *Server) authorizeWrite(c echo.Context, docid string, useTemp bool) (*access, error) {
	a, err := s.authorize(c, docid, useTemp)
	if err != nil {
		return nil, err
	}
	if !a.writeStar() {
		return nil, errUnauthorized
	}
	return a, nil
}

func keyEquals(given, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}

// validName accepts ids, types and usernames that fit the storage key and topic layouts,
// which split on ':' (§3.1).
func validName(kind, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s is empty", kind)
	case len(v) > 256:
		return fmt.Errorf("%s is longer than 256 bytes", kind)
	}
	for _, r := range v {
		if r == ':' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q contains ':' or a control character", kind, v)
		}
	}
	return nil
}
