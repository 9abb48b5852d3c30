package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/storage"
)

var errSingleUser = echo.NewHTTPError(http.StatusNotFound,
	"accounts are disabled: this server runs in single-user mode (start it with -m/--multi-user)")

// maxPasswordBytes is bcrypt's input limit.
const maxPasswordBytes = 72

// apiMode reports whether a login/register request comes from the Python client (field
// "api" non-empty), which wants JSON instead of redirects (§2.4 #28-#33).
func apiMode(c echo.Context) bool { return c.FormValue("api") != "" }

func (s *Server) redirect(c echo.Context, path string) error {
	return c.Redirect(http.StatusFound, s.cfg.URLPrefix+path)
}

// register is #32.
func (s *Server) register(c echo.Context) error {
	if !s.cfg.MultiUser {
		return errSingleUser
	}
	if err := s.refuseForeign(c); err != nil {
		return err
	}
	name, password := c.FormValue("username"), c.FormValue("password")
	if !apiMode(c) {
		if err := s.checkCSRF(c); err != nil {
			return err
		}
		confirm, ok := c.Request().PostForm["password_confirm"]
		if !ok {
			return badRequest("missing password_confirm")
		}
		if len(confirm) == 0 || confirm[0] != password {
			s.flash(c.Response(), c.Request(), "password and confirmation do not match")
			return s.redirect(c, "/bokeh/register")
		}
	}
	user, err := s.createUser(c, name, password)
	if err != nil {
		var refused userRefusal
		if !errors.As(err, &refused) {
			return err
		}
		if apiMode(c) {
			return c.JSON(http.StatusOK, map[string]any{"status": false, "error": string(refused)})
		}
		s.flash(c.Response(), c.Request(), string(refused))
		return s.redirect(c, "/bokeh/register")
	}
	if err := s.startSession(c.Request().Context(), c.Response(), c.Request(), user.Username); err != nil {
		return err
	}
	if apiMode(c) {
		return c.JSON(http.StatusOK, map[string]any{"status": true, "userapikey": user.APIKey})
	}
	return s.redirect(c, "/bokeh/")
}

// userRefusal is a registration refused for a reason the user should read.
type userRefusal string

func (r userRefusal) Error() string { return string(r) }

func (s *Server) createUser(c echo.Context, name, password string) (storage.User, error) {
	if err := validName("username", name); err != nil {
		return storage.User{}, userRefusal(err.Error())
	}
	if password == "" {
		return storage.User{}, userRefusal("password is empty")
	}
	if len(password) > maxPasswordBytes {
		return storage.User{}, userRefusal("password is longer than 72 bytes")
	}
	hash, err := hashPassword(password)
	if err != nil {
		return storage.User{}, err
	}
	u := storage.User{Username: name, PassHash: hash, APIKey: newKey()}
	err = s.store.CreateUser(c.Request().Context(), u)
	if errors.Is(err, storage.ErrExists) {
		return u, userRefusal("user already exists")
	}
	return u, err
}

// login is #29.
func (s *Server) login(c echo.Context) error {
	if !s.cfg.MultiUser {
		return errSingleUser
	}
	if err := s.refuseForeign(c); err != nil {
		return err
	}
	if !apiMode(c) {
		if err := s.checkCSRF(c); err != nil {
			return err
		}
	}
	name, password := c.FormValue("username"), c.FormValue("password")
	if !s.logins.allow(c.RealIP()+"\x00"+name, time.Now()) {
		s.log.Warn("login attempts throttled", "user", name, "remote", c.RealIP())
		return tooManyLogins(c)
	}
	user, ok, err := s.checkLogin(c, name, password)
	if err != nil {
		return err
	}
	if !ok {
		if apiMode(c) {
			return c.JSON(http.StatusOK, map[string]any{"status": false, "error": "incorrect login "})
		}
		s.flash(c.Response(), c.Request(), "incorrect login exists")
		return s.redirect(c, "/bokeh/login")
	}
	if err := s.startSession(c.Request().Context(), c.Response(), c.Request(), user.Username); err != nil {
		return err
	}
	if apiMode(c) {
		return c.JSON(http.StatusOK, map[string]any{"status": true, "userapikey": user.APIKey})
	}
	if next := localRedirect(c.Request(), c.FormValue("next")); next != "" {
		return c.Redirect(http.StatusFound, next)
	}
	return s.redirect(c, "/bokeh/")
}

// checkLogin verifies a password; a legacy sha1 hash is replaced by bcrypt on success.
func (s *Server) checkLogin(c echo.Context, name, password string) (storage.User, bool, error) {
	ctx := c.Request().Context()
	user, err := s.loadUser(ctx, name)
	if errors.Is(err, storage.ErrNotFound) || validName("username", name) != nil {
		// Spend the same time as a real check so that timing does not reveal accounts.
		checkPassword(dummyHash(), password)
		return user, false, nil
	}
	if err != nil {
		return user, false, err
	}
	ok, legacy := checkPassword(user.PassHash, password)
	if ok && legacy {
		if hash, err := hashPassword(password); err == nil {
			user.PassHash = hash
			if err := s.updateUser(ctx, name, func(u *storage.User) { u.PassHash = hash }); err != nil {
				s.log.Warn("upgrading legacy password hash", "user", name, "err", err)
			}
		}
	}
	return user, ok, nil
}

// dummyHash is a bcrypt hash of a random password, checked when the user does not exist.
var dummyHash = sync.OnceValue(func() string {
	h, _ := hashPassword(newKey())
	return h
})

// loginFromAPIKey is #30: a browser session from the Python client's credentials. It is a
// GET that logs in, so it must not be a drive-by (login CSRF): see checkStateChangingGET.
func (s *Server) loginFromAPIKey(c echo.Context) error {
	if !s.cfg.MultiUser {
		return errSingleUser
	}
	if err := s.checkStateChangingGET(c); err != nil {
		return err
	}
	name, key := c.QueryParam("username"), c.QueryParam("userapikey")
	if !s.logins.allow(c.RealIP()+"\x00"+name, time.Now()) {
		return tooManyLogins(c)
	}
	user, err := s.loadUser(c.Request().Context(), name)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err != nil || key == "" || subtle.ConstantTimeCompare([]byte(user.APIKey), []byte(key)) != 1 {
		s.flash(c.Response(), c.Request(), "incorrect login")
		return s.redirect(c, "/bokeh/login")
	}
	if err := s.startSession(c.Request().Context(), c.Response(), c.Request(), user.Username); err != nil {
		return err
	}
	return s.redirect(c, "/bokeh/")
}

// logout is #33, a GET as the pages' link needs: it ends the session for good (a copy of
// the cookie is refused afterwards), and only from this server's own pages.
func (s *Server) logout(c echo.Context) error {
	if !s.cfg.MultiUser {
		return errSingleUser
	}
	if err := s.checkStateChangingGET(c); err != nil {
		return err
	}
	if err := s.endSession(c.Request().Context(), c.Request()); err != nil {
		return err
	}
	clearCookie(c.Response(), sessionCookie)
	return s.redirect(c, "/bokeh/")
}
