package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Cookies are signed with the shared secret key, so that several API processes accept each
// other's sessions (the original signed with a per-process random key). What a session
// cookie holds and how sessions end is in sessions.go.
const (
	sessionCookie = "session"
	flashCookie   = "bokeh_flash"
	sessionMaxAge = 30 * 24 * time.Hour
)

// sign returns value.issued.mac for a cookie named name.
func (s *Server) sign(name, value string, now time.Time) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(value)) + "." + strconv.FormatInt(now.Unix(), 10)
	return payload + "." + s.mac(name, payload)
}

func (s *Server) mac(name, payload string) string {
	m := hmac.New(sha256.New, []byte(s.cfg.SecretKey))
	m.Write([]byte(name + "\x00" + payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verify returns the value of a signed cookie that is authentic and not older than maxAge.
func (s *Server) verify(name, cookie string, maxAge time.Duration, now time.Time) (string, bool) {
	i := strings.LastIndexByte(cookie, '.')
	if i < 0 {
		return "", false
	}
	payload, mac := cookie[:i], cookie[i+1:]
	if !hmac.Equal([]byte(mac), []byte(s.mac(name, payload))) {
		return "", false
	}
	enc, issued, ok := strings.Cut(payload, ".")
	if !ok {
		return "", false
	}
	ts, err := strconv.ParseInt(issued, 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)) > maxAge {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(raw), true
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    s.sign(name, value, time.Now()),
		Path:     "/",
		MaxAge:   int(maxAge.Seconds()),
		HttpOnly: true,
		Secure:   s.secureRequest(r),
		SameSite: http.SameSiteLaxMode,
	})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// flash stores a one-time message for the next page (Flask's flash()).
func (s *Server) flash(w http.ResponseWriter, r *http.Request, msg string) {
	s.setCookie(w, r, flashCookie, msg, time.Minute)
}

// takeFlash returns and clears the pending flash message.
func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	clearCookie(w, flashCookie)
	msg, _ := s.verify(flashCookie, c.Value, time.Minute, time.Now())
	return msg
}
