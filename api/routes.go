package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// route methods sent in Access-Control-Allow-Methods (§2.1: the original sent the literal
// "None" on most routes; we send the route's real methods).
const (
	modelMethods = "GET, PATCH, PUT, DELETE, OPTIONS"
	getMethods   = "GET, OPTIONS"
)

// routes builds the router: every route of PROTOCOL.md §2.3 under the prefix P, in both
// trailing-slash forms, plus the unprefixed paths that clients hard-code (§8 item 15).
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = s.proxies.clientIP
	e.Use(s.accessLog, middleware.Recover(), s.checkHost, s.bodyLimit)

	p := s.cfg.URLPrefix
	r := router{s: s, e: e, prefix: p}

	// Backbone model routes (#1-#8, #45).
	bb := "/bokeh/bb/:docid"
	r.both(http.MethodGet, bb+"/", s.getAllModels, getMethods)
	r.add(http.MethodPost, bb+"/bulkupsert", s.bulkUpsertOrApplet, "")
	r.add(http.MethodPost, bb+"/gc", s.gc, "")
	r.both(http.MethodGet, bb+"/rungc", s.runGC070, getMethods)
	r.both(http.MethodGet, bb+"/:typename/", s.getModelsByType, getMethods)
	r.both(http.MethodPost, bb+"/:typename/", s.createModel, "")
	r.both(http.MethodGet, bb+"/:typename/:id/", s.getModel, modelMethods)
	r.both(http.MethodPut, bb+"/:typename/:id/", s.updateModelOrApplet, modelMethods)
	r.both(http.MethodPatch, bb+"/:typename/:id/", s.updateModelOrApplet, modelMethods)
	r.both(http.MethodDelete, bb+"/:typename/:id/", s.deleteModel, modelMethods)

	// Documents (#13-#19, #46).
	r.both(http.MethodPost, "/bokeh/doc/", s.createDoc, "")
	r.both(http.MethodGet, "/bokeh/doc/", s.docByTitle, getMethods)
	r.both(http.MethodDelete, "/bokeh/doc/:docid/", s.deleteDoc, "DELETE, GET, OPTIONS")
	r.both(http.MethodGet, "/bokeh/doc/:docid/", s.docInfo, "DELETE, GET, OPTIONS")
	r.both(http.MethodGet, "/bokeh/bokehinfo/:docid/", s.docInfo, getMethods)
	r.both(http.MethodGet, "/bokeh/objinfo/:docid/:objid", s.objInfo, getMethods)
	r.both(http.MethodGet, "/bokeh/getdocapikey/:docid", s.getDocAPIKey, getMethods)
	r.both(http.MethodPost, "/bokeh/:docid/publish", s.publishDoc, "")

	// Users and misc (#20-#22, #28-#35).
	r.both(http.MethodGet, "/bokeh/userinfo/", s.userInfo, getMethods)
	r.both(http.MethodGet, "/bokeh/wsurl/", s.wsURL, getMethods)
	// CORS (unlike the original): BokehJS pings before it reloads a page on
	// debug:debug:reload, which a worker's resync sends to embeds without live.js.
	r.both(http.MethodGet, "/bokeh/ping", s.ping, getMethods)
	r.both(http.MethodGet, "/bokeh/login", s.loginPage, "")
	r.both(http.MethodPost, "/bokeh/login", s.login, "")
	r.both(http.MethodGet, "/bokeh/loginfromapikey", s.loginFromAPIKey, "")
	r.both(http.MethodGet, "/bokeh/register", s.registerPage, "")
	r.both(http.MethodPost, "/bokeh/register", s.register, "")
	r.both(http.MethodGet, "/bokeh/logout", s.logout, "")
	r.add(http.MethodGet, "/bokeh/sampleerror", s.sampleError, "")
	r.add(http.MethodGet, "/bokeh/internal/dockeys/:docid", s.internalDocKeys, "")
	r.add(http.MethodGet, "/bokeh/internal/usertopic/:username", s.internalUserTopic, "")

	// Pages (#23-#27).
	r.add(http.MethodGet, "/", s.rootIndex, "")
	r.both(http.MethodGet, "/bokeh/", s.indexPage, "")
	r.both(http.MethodGet, "/bokeh/doc/:docid/show", s.showPage, getMethods)
	r.both(http.MethodGet, "/bokeh/doc/:docid/:objid", s.objectPage, "")
	r.add(http.MethodGet, "/bokeh/autoload.js/:elementid", s.autoloadJS, getMethods)

	// Static files (#34, #36-#39); #37 (-j source tree), #40-#43 and #47 are not served.
	r.add(http.MethodGet, "/bokeh/favicon.ico", s.favicon, "")
	r.add(http.MethodGet, "/bokehjs/static/*", s.bokehJSFile, getMethods)
	r.add(http.MethodGet, "/bokeh/static/*", s.staticFile, getMethods)
	e.GET("/static/*", s.staticFile, s.cors(getMethods))
	e.OPTIONS("/static/*", s.preflight, s.cors(getMethods))
	r.add(http.MethodGet, "/bokeh/jsgenerate/:parent/:module/:class", s.jsGenerate, getMethods)
	r.any("/bokeh/data/*", s.gone("remote data routes were removed in bokeh 0.8"))
	r.any("/render/*", s.notImplemented("the blaze render blueprint is not available"))

	// Health and metrics, unprefixed so probes need no knowledge of P.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.metricsHandler())

	if p != "" {
		// Clients hard-code these absolute paths (§8 item 15): serve them unprefixed too.
		root := router{s: s, e: e}
		root.both(http.MethodPost, "/bokeh/login", s.login, "")
		root.both(http.MethodPost, "/bokeh/register", s.register, "")
		root.both(http.MethodDelete, "/bokeh/doc/:docid/", s.deleteDoc, "DELETE, OPTIONS")
		root.both(http.MethodPost, "/bokeh/:docid/publish", s.publishDoc, "")
		root.both(http.MethodGet, "/bokeh/userinfo/", s.userInfo, getMethods)
	}
	return e
}

// router registers handlers under a prefix, with an OPTIONS preflight for CORS routes.
type router struct {
	s      *Server
	e      *echo.Echo
	prefix string
}

// add registers one path. corsMethods, when not empty, marks a CORS route (§2.1).
func (r router) add(method, path string, h echo.HandlerFunc, corsMethods string) {
	full := r.prefix + path
	if full == "" {
		full = "/"
	}
	if corsMethods == "" {
		r.e.Add(method, full, h)
		return
	}
	cors := r.s.cors(corsMethods)
	r.e.Add(method, full, h, cors)
	r.e.Add(http.MethodOptions, full, r.s.preflight, cors)
}

// both registers path with and without its trailing slash (§2.1: accept both forms).
func (r router) both(method, path string, h echo.HandlerFunc, corsMethods string) {
	r.add(method, path, h, corsMethods)
	if alt, ok := strings.CutSuffix(path, "/"); ok {
		r.add(method, alt, h, corsMethods)
	} else {
		r.add(method, path+"/", h, corsMethods)
	}
}

func (r router) any(path string, h echo.HandlerFunc) {
	r.e.Any(r.prefix+path, h)
}
