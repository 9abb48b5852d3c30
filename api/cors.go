package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// cors adds the §2.1 CORS headers. Allowed headers are the preflight's requested ones echoed
// back: in public mode BokehJS sends a header named temporary-<docid>, which no fixed list
// can name. Unlike the original, errors carry the headers too, so a cross-origin page can
// read why a request failed.
func (s *Server) cors(methods string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Allow-Methods", methods)
			h.Set("Access-Control-Max-Age", "21600")
			if req := c.Request().Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
			}
			return next(c)
		}
	}
}

// preflight answers OPTIONS without running auth (§2.1).
func (s *Server) preflight(c echo.Context) error {
	c.Response().Header().Set("Allow", c.Response().Header().Get("Access-Control-Allow-Methods"))
	return c.NoContent(http.StatusOK)
}
