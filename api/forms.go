package api

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// The account forms are protected three ways: session cookies are SameSite=Lax (a
// cross-site POST carries no session), login/register/logout refuse requests from pages of
// another site (login CSRF, see crosssite.go), and the HTML forms carry a double-submit
// token. The Python client sends no Origin header and no token, and keeps working.
const (
	csrfCookie = "bokeh_csrf"
	csrfField  = "csrf_token"
)

// Login throttling: per client address and username, loginBurst attempts at once, then one
// per loginEvery. Limiters idle for loginForget are dropped.
const (
	loginBurst  = 10
	loginEvery  = 6 * time.Second
	loginForget = 10 * time.Minute
)

// csrfToken returns the form token of this browser, setting its cookie when new.
func (s *Server) csrfToken(c echo.Context) string {
	if ck, err := c.Request().Cookie(csrfCookie); err == nil {
		if v, ok := s.verify(csrfCookie, ck.Value, sessionMaxAge, time.Now()); ok {
			return v
		}
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	s.setCookie(c.Response(), c.Request(), csrfCookie, token, sessionMaxAge)
	return token
}

// checkCSRF verifies the token of an HTML form post.
func (s *Server) checkCSRF(c echo.Context) error {
	ck, err := c.Request().Cookie(csrfCookie)
	if err != nil {
		return echo.NewHTTPError(http.StatusForbidden, "form expired or cookies disabled: reload the page and try again")
	}
	want, ok := s.verify(csrfCookie, ck.Value, sessionMaxAge, time.Now())
	if !ok || !keyEquals(c.FormValue(csrfField), want) {
		return echo.NewHTTPError(http.StatusForbidden, "form expired or cookies disabled: reload the page and try again")
	}
	return nil
}

// loginLimiter throttles password guessing.
type loginLimiter struct {
	mu       sync.Mutex
	limiters map[string]*limiterEntry
	swept    time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{limiters: map[string]*limiterEntry{}}
}

// allow reports whether another attempt for key may run now.
func (l *loginLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > loginForget {
		for k, e := range l.limiters {
			if now.Sub(e.seen) > loginForget {
				delete(l.limiters, k)
			}
		}
		l.swept = now
	}
	e := l.limiters[key]
	if e == nil {
		e = &limiterEntry{lim: rate.NewLimiter(rate.Every(loginEvery), loginBurst)}
		l.limiters[key] = e
	}
	e.seen = now
	return e.lim.AllowN(now, 1)
}

var errTooManyLogins = echo.NewHTTPError(http.StatusTooManyRequests, "too many login attempts; wait a minute and try again")

// tooManyLogins refuses a throttled login, saying when the next attempt is allowed.
func tooManyLogins(c echo.Context) error {
	c.Response().Header().Set(headerRetryAfter, strconv.Itoa(int(max(loginEvery/time.Second, 1))))
	return errTooManyLogins
}
