package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
)

// Sessions are revocable: a session cookie carries the username and a random session id,
// and is honoured only while the user record lists the hash of that id. Logout removes the
// entry, so a copy of the cookie replayed afterwards gets 401 on every API process sharing
// the storage. A user keeps at most maxSessions logins (the oldest ends first); entries
// older than sessionMaxAge are dropped when the next login is recorded.
const maxSessions = 32

// wsUserCookie names the signature of the tokens with which our pages subscribe to their
// user's bokehuser topic (see wsUserToken).
const wsUserCookie = "bokeh_wsuser"

// sessionCookieValue joins what a session cookie holds; usernames never contain '\n'
// (validName), and old records' names are split at the last one.
func sessionCookieValue(username, sid string) string { return username + "\n" + sid }

// hashSessionID is what the user record keeps of a session id.
func hashSessionID(sid string) string {
	h := sha256.Sum256([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(h[:18])
}

// splitSessionValue splits what sessionCookieValue joined.
func splitSessionValue(v string) (username, rest string, ok bool) {
	i := strings.LastIndexByte(v, '\n')
	if i <= 0 || i == len(v)-1 {
		return "", "", false
	}
	return v[:i], v[i+1:], true
}

// sessionFromCookie returns the username and session id of an authentic, unexpired session
// cookie (not yet checked against the user record).
func (s *Server) sessionFromCookie(r *http.Request) (username, sid string, ok bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", "", false
	}
	v, ok := s.verify(sessionCookie, c.Value, sessionMaxAge, time.Now())
	if !ok {
		return "", "", false
	}
	return splitSessionValue(v)
}

// liveSession reports whether u still lists the session whose id hashes to idHash.
func liveSession(u storage.User, idHash string, now time.Time) bool {
	return slices.ContainsFunc(u.Sessions, func(e storage.Session) bool {
		return e.IDHash == idHash && now.Sub(time.Unix(e.Issued, 0)) <= sessionMaxAge
	})
}

// startSession records a new login of username and sets its cookie.
func (s *Server) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, username string) error {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("session id: %w", err)
	}
	sid := hex.EncodeToString(b)
	now := time.Now()
	err := s.updateUser(ctx, username, func(u *storage.User) {
		u.Sessions = slices.DeleteFunc(u.Sessions, func(e storage.Session) bool {
			return now.Sub(time.Unix(e.Issued, 0)) > sessionMaxAge
		})
		if len(u.Sessions) >= maxSessions {
			u.Sessions = slices.Delete(u.Sessions, 0, len(u.Sessions)-maxSessions+1)
		}
		u.Sessions = append(u.Sessions, storage.Session{IDHash: hashSessionID(sid), Issued: now.Unix()})
	})
	if err != nil {
		return fmt.Errorf("start session of %q: %w", username, err)
	}
	s.setCookie(w, r, sessionCookie, sessionCookieValue(username, sid), sessionMaxAge)
	return nil
}

// endSession forgets the request's session, if it has a valid one.
func (s *Server) endSession(ctx context.Context, r *http.Request) error {
	name, sid, ok := s.sessionFromCookie(r)
	if !ok {
		return nil
	}
	want := hashSessionID(sid)
	err := s.updateUser(ctx, name, func(u *storage.User) {
		u.Sessions = slices.DeleteFunc(u.Sessions, func(e storage.Session) bool { return e.IDHash == want })
	})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("end session of %q: %w", name, err)
	}
	return nil
}

// updateUser changes a user record under the user's lock (documents are added to the same
// record under it too).
func (s *Server) updateUser(ctx context.Context, username string, change func(*storage.User)) error {
	defer s.locks.lock("user:" + username)()
	u, err := s.loadUser(ctx, username)
	if err != nil {
		return err
	}
	change(&u)
	return s.store.PutUser(ctx, u)
}

// wsUserToken is the credential our pages send when they subscribe to their user's
// bokehuser topic on a worker: bound to the page's session, so it ends with it, and unlike
// the session cookie (HttpOnly) harmless to show to the page's script: it opens nothing but
// that topic.
func (s *Server) wsUserToken(username, sid string) string {
	return s.sign(wsUserCookie, sessionCookieValue(username, hashSessionID(sid)), time.Now())
}

// wsUserTokenValid reports whether token is a token of a live session of user u.
func (s *Server) wsUserTokenValid(u storage.User, token string) bool {
	now := time.Now()
	v, ok := s.verify(wsUserCookie, token, sessionMaxAge, now)
	name, idHash, split := splitSessionValue(v)
	return ok && split && name == u.Username && liveSession(u, idHash, now)
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
