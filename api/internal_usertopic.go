package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/api/workerapi"
)

// internalUserTopic tells websocket workers whether a subscription to bokehuser:<username>
// is granted (workerapi.UserTopicPath). Those topics carry a user's docchange notices, so in
// multi-user mode they need that user's credentials: the token our document list pages
// subscribe with (bound to the page's session), or the user's API key.
func (s *Server) internalUserTopic(c echo.Context) error {
	if !keyEquals(c.Request().Header.Get(workerapi.InternalTokenHeader), s.token) {
		return echo.NewHTTPError(http.StatusUnauthorized, "bad internal token")
	}
	ok, err := s.userTopicGranted(c.Request().Context(), c.Param("username"), c.Request().Header.Get(workerapi.SubscribeAuthHeader))
	if err != nil {
		return err
	}
	if !ok {
		return echo.NewHTTPError(http.StatusForbidden, "no credentials of this user")
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) userTopicGranted(ctx context.Context, username, auth string) (bool, error) {
	if !s.cfg.MultiUser {
		return true, nil // one user, whom network access already makes anyone (§3.6)
	}
	if auth == "" || validName("username", username) != nil {
		return false, nil
	}
	u, err := s.loadUser(ctx, username)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if auth != defaultAPIKey && keyEquals(auth, u.APIKey) {
		return true, nil
	}
	return s.wsUserTokenValid(u, auth), nil
}
