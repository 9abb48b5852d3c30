// Package api is the HTTP side of bokeh-server: every route the bokeh 0.7/0.8 Python client
// and BokehJS call (PROTOCOL.md §2), over a storage.Store, publishing changes to a broker.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/api/applet"
	"github.com/bokeh-go/bokeh-server/api/workerapi"
	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/storage"
)

// DefaultMaxBodyBytes bounds request bodies; a 1000-point update is about 40 KB, so this
// leaves room for very large data sources while refusing runaway uploads with 413.
const DefaultMaxBodyBytes = 64 << 20

// Config says how the API behaves; the CLI fills it from flags.
type Config struct {
	// URLPrefix is P: "" or "/something" (normalised by NormalizePrefix).
	URLPrefix string
	// MultiUser turns on accounts, sessions and per-document permissions (§3.6).
	MultiUser bool
	// SecretKey signs session cookies and derives the worker token. Several API processes
	// sharing it accept each other's sessions.
	SecretKey string
	// WSConnString, if set, is returned verbatim by wsurl; a value starting with "/" is a
	// path on the page's own host (a balancer in front of API and workers).
	WSConnString string
	// Workers names live websocket workers for wsurl when WSConnString is empty.
	Workers WorkerPicker
	// MaxBodyBytes bounds request bodies (0: DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// BokehJSDir is the BokehJS build served at P/bokehjs/static/ (may be missing).
	BokehJSDir string
	// StaticDir holds jquery and bootstrap, served at /static/ and P/bokeh/static/.
	StaticDir string
	// FilterLogs hides access-log lines of successful static-file requests.
	FilterLogs bool
	// Logger receives access and error logs (nil: slog.Default()).
	Logger *slog.Logger
	// Applets is the running host of a --script applet (nil: none).
	Applets *applet.Host
	// AppletTTL is how long an applet page's document is kept after its last use
	// (0: storage.DefaultOverlayTTL).
	AppletTTL time.Duration

	// TrustedProxies are the peers whose X-Forwarded-For, X-Real-IP and X-Forwarded-Proto
	// are believed (none by default: a client could forge them).
	TrustedProxies []netip.Prefix
	// ListenHost is the --ip the API listens on; a name given there is an allowed Host.
	ListenHost string
	// AllowedHosts are further Host names this server answers to ("*.example.org" for
	// subdomains, "*" for any); IP literals and localhost always are (see hostPolicy).
	AllowedHosts []string
	// AllowedOrigins are the sites (scheme://host[:port], "*" for any) whose pages may read
	// and change what this server's own pages may; others get published documents only.
	AllowedOrigins []string
	// ReadTimeout bounds reading a request body: this long plus a second per MinBodyRate
	// bytes (0: DefaultReadTimeout).
	ReadTimeout time.Duration
	// Scratch bounds public viewers' scratch copies (zero fields: the defaults).
	Scratch ScratchLimits
	// OverlayTTL is how long storage keeps a scratch copy after its last write; the quotas
	// free its share after as long (0: storage.DefaultOverlayTTL).
	OverlayTTL time.Duration
}

// WorkerPicker hands out the websocket port of a live worker, spreading pages across them.
type WorkerPicker interface {
	// NextWorkerPort returns a live worker's port, or false when none is up.
	NextWorkerPort() (int, bool)
}

// StaticWorkers always picks from a fixed list of ports, round robin.
type StaticWorkers struct {
	Ports []int
	next  atomic.Uint64
}

// NextWorkerPort returns the next port of the list.
func (s *StaticWorkers) NextWorkerPort() (int, bool) {
	if len(s.Ports) == 0 {
		return 0, false
	}
	return s.Ports[(s.next.Add(1)-1)%uint64(len(s.Ports))], true
}

// Server holds what the handlers share.
type Server struct {
	cfg    Config
	store  storage.Store
	pub    broker.Publisher
	log    *slog.Logger
	locks  *keyedLocks
	token  string
	echo   *echo.Echo
	pages  *pages
	logins *loginLimiter
	fields *fieldCache
	docs   *docCache
	// infoReads shares concurrent builds of document reloads (bokehinfo).
	infoReads *sharedReads

	proxies *proxyTrust
	hosts   *hostPolicy
	origins originList
	scratch *scratchQuotas
	handler http.Handler

	metrics *metrics
	applets *applets // nil without a --script
}

// New builds the API over store, publishing through pub.
func New(cfg Config, store storage.Store, pub broker.Publisher) (*Server, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("api: a secret key is required")
	}
	prefix, err := NormalizePrefix(cfg.URLPrefix)
	if err != nil {
		return nil, err
	}
	cfg.URLPrefix = prefix
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.OverlayTTL <= 0 {
		cfg.OverlayTTL = storage.DefaultOverlayTTL
	}
	cfg.Scratch = cfg.Scratch.withDefaults()
	s := &Server{
		cfg:       cfg,
		store:     store,
		pub:       pub,
		log:       cfg.Logger,
		locks:     newKeyedLocks(),
		token:     workerapi.InternalToken(cfg.SecretKey),
		logins:    newLoginLimiter(),
		fields:    newFieldCache(),
		docs:      newDocCache(),
		infoReads: newSharedReads(),

		proxies: newProxyTrust(cfg.TrustedProxies),
		hosts:   newHostPolicy(cfg.ListenHost, cfg.AllowedHosts),
		origins: newOriginList(cfg.AllowedOrigins),
		scratch: newScratchQuotas(cfg.Scratch, cfg.OverlayTTL),
	}
	s.metrics = newMetrics(s)
	s.pages, err = newPages(prefix, cfg.BokehJSDir)
	if err != nil {
		return nil, err
	}
	if cfg.Applets != nil {
		if s.applets, err = newApplets(cfg.Applets); err != nil {
			return nil, err
		}
	}
	s.echo = s.routes()
	if err := s.addAppletRoutes(); err != nil {
		return nil, err
	}
	s.handler = s.bodyDeadlines(s.echo)
	return s, nil
}

// Handler is the HTTP handler of the whole API.
func (s *Server) Handler() http.Handler { return s.handler }

// NormalizePrefix turns a --url-prefix value into "" or "/a/b" (leading slash, no trailing
// slash), as 0.6.1 did.
func NormalizePrefix(p string) (string, error) {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return "", nil
	}
	if strings.ContainsAny(p, "?#:% \t") {
		return "", fmt.Errorf("url prefix %q: only path characters are allowed", p)
	}
	return "/" + p, nil
}

// Ready reports whether storage answers, for /readyz.
func (s *Server) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}
