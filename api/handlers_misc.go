package api

import (
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// wsURL is #21: where BokehJS opens its websocket (§1.5). Plain text, never JSON.
func (s *Server) wsURL(c echo.Context) error {
	if conn := s.cfg.WSConnString; conn != "" {
		if strings.HasPrefix(conn, "/") {
			// A path: the websocket is behind the same host as the page (a balancer
			// routing /bokeh/sub to the workers).
			conn = s.wsScheme(c.Request()) + "://" + c.Request().Host + conn
		}
		return c.String(http.StatusOK, conn)
	}
	if s.cfg.Workers == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "no websocket worker is configured (start workers or pass --ws-conn-string)")
	}
	port, ok := s.cfg.Workers.NextWorkerPort()
	if !ok {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "no websocket worker is up right now; retry shortly")
	}
	host := hostOnly(c.Request().Host)
	return c.String(http.StatusOK, s.wsScheme(c.Request())+"://"+net.JoinHostPort(host, strconv.Itoa(port))+s.cfg.URLPrefix+"/bokeh/sub/")
}

// wsScheme is wss when the page came over TLS (an https page cannot open ws://).
func (s *Server) wsScheme(r *http.Request) string {
	if s.secureRequest(r) {
		return "wss"
	}
	return "ws"
}

// hostOnly strips the port from a Host header, keeping IPv6 addresses bare for JoinHostPort.
func hostOnly(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return strings.Trim(hostport, "[]")
}

// startTime is the modification time of embedded files.
var startTime = time.Now()

// ping is #22.
func (s *Server) ping(c echo.Context) error { return c.String(http.StatusOK, "pong") }

// sampleError is #35, the original's test route: always 500.
func (s *Server) sampleError(echo.Context) error {
	return echo.NewHTTPError(http.StatusInternalServerError, "sample error (test route)")
}

func (s *Server) healthz(c echo.Context) error { return c.String(http.StatusOK, "ok") }

func (s *Server) readyz(c echo.Context) error {
	if err := s.Ready(c.Request().Context()); err != nil {
		return c.String(http.StatusServiceUnavailable, "not ready: "+err.Error())
	}
	return c.String(http.StatusOK, "ready")
}

// favicon is #34.
func (s *Server) favicon(c echo.Context) error {
	b, err := webFS.ReadFile("web/static/favicon.ico")
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "image/x-icon", b)
}

// bokehJSFile is #36: the BokehJS build.
func (s *Server) bokehJSFile(c echo.Context) error {
	if !s.pages.bokehJSBuilt() {
		return echo.NewHTTPError(http.StatusNotFound,
			"BokehJS is not built in "+s.cfg.BokehJSDir+": run `make setup` (scripts/build-bokehjs.sh)")
	}
	return serveDir(c, s.cfg.BokehJSDir, c.Param("*"))
}

// staticFile is #38/#39: our own embedded files first (live.js), then jquery and bootstrap.
func (s *Server) staticFile(c echo.Context) error {
	name := c.Param("*")
	if fs.ValidPath(name) {
		if b, err := webFS.ReadFile("web/static/" + name); err == nil {
			http.ServeContent(c.Response(), c.Request(), name, startTime, strings.NewReader(string(b)))
			return nil
		}
	}
	return serveDir(c, s.cfg.StaticDir, name)
}

// serveDir serves one file below dir through an os.Root, so nothing outside dir is
// reachable: not by "..", an absolute path, nor a symbolic link pointing out of it.
// Directories are not listed.
func serveDir(c echo.Context, dir, name string) error {
	if strings.ContainsRune(name, 0) {
		return badRequest("file name contains a NUL byte")
	}
	if dir == "" || !fs.ValidPath(name) || name == "." {
		return echo.NewHTTPError(http.StatusNotFound, "no such file")
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return echo.NewHTTPError(http.StatusNotFound, "no such file: "+name)
	}
	defer root.Close()
	fsys := root.FS()
	info, err := fs.Stat(fsys, name)
	if err != nil || info.IsDir() {
		// Missing, a directory, or a link leading out of dir (os.Root refuses those).
		return echo.NewHTTPError(http.StatusNotFound, "no such file: "+name)
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeFileFS(c.Response(), c.Request(), fsys, name)
	return nil
}
