// Package browser drives Debian's chromium (headless, through chromedp) for the black-box
// browser tests: one chromium per test, a fresh browser context (own cookies and cache) per
// page, and everything the page reports collected: console messages, uncaught exceptions,
// failed requests and HTTP error responses.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Limits of the browser helpers; every wait is bounded.
const (
	startWait    = 30 * time.Second
	navigateWait = 40 * time.Second
	actionWait   = 10 * time.Second
)

// ExecPath finds chromium: $CHROMIUM (set by make test), else chromium on PATH. It fails the
// test (never skips) when there is none.
func ExecPath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("CHROMIUM=%s: %v (run `make setup` to install chromium)", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Fatal("chromium not found (neither $CHROMIUM nor chromium on PATH): run `make setup`, " +
		"which installs Debian's chromium for the browser tests")
	return ""
}

// Browser is one running chromium.
type Browser struct {
	ctx context.Context // a chromedp context whose browser is started
}

// Start launches headless chromium for the test; it is stopped when the test ends.
func Start(tb testing.TB) *Browser {
	tb.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ExecPath(tb)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1000, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser; it is bound to ctx, so it gets no deadline itself.
	if err := bounded(startWait, func() error { return chromedp.Do(ctx) }); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return &Browser{ctx: ctx}
}

// Message is one thing a page reported.
type Message struct {
	Kind string // console type ("log", "error", ...), "exception", "browser-error", "browser-warning", "request-failed" or "http-error"
	Text string
}

func (m Message) String() string { return m.Kind + ": " + m.Text }

// Page is one tab in its own browser context.
type Page struct {
	tb   testing.TB
	Name string
	ctx  context.Context

	mu       sync.Mutex
	messages []Message
	urls     map[network.RequestID]string
	ignore   []string // substrings of failures that are expected (see ExpectFailures)
}

// NewPage opens a tab in a fresh browser context (no cookies, no cache); it is closed when
// the test ends.
func (b *Browser) NewPage(tb testing.TB, name string) *Page {
	tb.Helper()
	p := &Page{tb: tb, Name: name, urls: map[network.RequestID]string{}}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(p.listen))
	tb.Cleanup(cancel)
	p.ctx = ctx
	if err := bounded(startWait, func() error { return chromedp.Do(ctx) }); err != nil {
		tb.Fatalf("open tab %s: %v", name, err)
	}
	return p
}

// bounded runs f, giving up after d (f keeps running; the test's cleanup cancels it).
func bounded(d time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("no answer within %v", d)
	}
}

// listen runs in the tab's event loop: record, return fast, no commands.
func (p *Page) listen(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		p.messages = append(p.messages, Message{Kind: string(ev.Type), Text: consoleText(ev.Args)})
	case *runtime.EventExceptionThrown:
		p.messages = append(p.messages, Message{Kind: "exception", Text: exceptionText(ev.ExceptionDetails)})
	case *cdplog.EventEntryAdded:
		// The browser's own messages (failed websockets, CORS and CSP refusals, ...).
		if e := ev.Entry; e != nil && (e.Level == cdplog.EntryLevelError || e.Level == cdplog.EntryLevelWarning) {
			text := e.Text
			if e.URL != "" && !strings.Contains(text, e.URL) {
				text += " (" + e.URL + ")"
			}
			p.messages = append(p.messages, Message{Kind: "browser-" + string(e.Level), Text: text})
		}
	case *network.EventRequestWillBeSent:
		p.urls[ev.RequestID] = ev.Request.Method + " " + ev.Request.URL
	case *network.EventLoadingFailed:
		u := p.urls[ev.RequestID]
		text := fmt.Sprintf("%s: %s", u, ev.ErrorText)
		if ev.CorsErrorStatus != nil {
			text += fmt.Sprintf(" (CORS %s %s)", ev.CorsErrorStatus.CorsError, ev.CorsErrorStatus.FailedParameter)
		}
		if ev.BlockedReason != "" {
			text += " (blocked: " + string(ev.BlockedReason) + ")"
		}
		if ev.Canceled {
			text += " (canceled)"
		}
		p.messages = append(p.messages, Message{Kind: "request-failed", Text: text})
	case *network.EventResponseReceived:
		if ev.Response != nil && ev.Response.Status >= 400 {
			p.messages = append(p.messages, Message{Kind: "http-error",
				Text: fmt.Sprintf("%s: %d %s", p.urls[ev.RequestID], ev.Response.Status, ev.Response.StatusText)})
		}
	}
}

func consoleText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == nil:
		case len(a.Value) > 0:
			s := string(a.Value)
			if strings.HasPrefix(s, `"`) {
				s = strings.Trim(s, `"`)
			}
			parts = append(parts, s)
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "exception"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	if d.URL != "" {
		s += fmt.Sprintf(" (%s:%d:%d)", d.URL, d.LineNumber+1, d.ColumnNumber+1)
	}
	return s
}

// Messages returns everything recorded so far.
func (p *Page) Messages() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Message(nil), p.messages...)
}

// ExpectFailures marks failed requests, HTTP errors and browser errors whose text contains
// substr as expected (e.g. the websocket of a worker the test kills).
func (p *Page) ExpectFailures(substr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ignore = append(p.ignore, substr)
}

// Problems returns console errors, uncaught exceptions, failed requests and HTTP errors.
func (p *Page) Problems() []Message {
	var out []Message
	p.mu.Lock()
	defer p.mu.Unlock()
next:
	for _, m := range p.messages {
		switch m.Kind {
		case "error", "assert", "exception":
		case "request-failed", "http-error", "browser-error":
			for _, s := range p.ignore {
				if strings.Contains(m.Text, s) {
					continue next
				}
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// CheckClean fails the test when the page reported a problem, printing its console.
func (p *Page) CheckClean() {
	p.tb.Helper()
	if probs := p.Problems(); len(probs) > 0 {
		p.tb.Errorf("page %s reported %d problem(s):\n  %s\nconsole:\n%s", p.Name, len(probs), join(probs), p.ConsoleLog())
	}
}

// ConsoleLog is the whole recorded console, one message a line.
func (p *Page) ConsoleLog() string {
	return "  " + join(p.Messages())
}

func join(ms []Message) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return strings.Join(s, "\n  ")
}

// timeout returns a context for one action of at most d.
func (p *Page) timeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, d)
}

// Navigate loads url and waits for its load event.
func (p *Page) Navigate(url string) {
	p.tb.Helper()
	ctx, cancel := p.timeout(navigateWait)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		p.tb.Fatalf("%s: navigate %s: %v\nconsole:\n%s", p.Name, url, err, p.ConsoleLog())
	}
}

// Eval evaluates a JS expression and decodes its (JSON) value into T.
func Eval[T any](p *Page, expr string) T {
	p.tb.Helper()
	v, err := TryEval[T](p, expr)
	if err != nil {
		p.tb.Fatalf("%s: evaluate %s: %v\nconsole:\n%s", p.Name, expr, err, p.ConsoleLog())
	}
	return v
}

// TryEval is Eval returning the error.
func TryEval[T any](p *Page, expr string) (T, error) {
	ctx, cancel := p.timeout(actionWait)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// WaitFor polls expr (every 50 ms) until it evaluates to true, for at most d; it returns how
// long that took. Exceptions while polling count as false (the page may still be loading).
func (p *Page) WaitFor(what, expr string, d time.Duration) time.Duration {
	p.tb.Helper()
	start := time.Now()
	deadline := start.Add(d)
	var lastErr error
	for {
		ok, err := TryEval[bool](p, "(function(){try{return !!("+expr+")}catch(e){return false}})()")
		if err == nil && ok {
			return time.Since(start)
		}
		lastErr = err
		if time.Now().After(deadline) {
			p.tb.Fatalf("%s: %s: not true after %v (%s; last error %v)\nconsole:\n%s",
				p.Name, what, d, expr, lastErr, p.ConsoleLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Action runs chromedp steps with the action timeout.
func (p *Page) Action(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.tb.Helper()
	ctx, cancel := p.timeout(navigateWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.tb.Fatalf("%s: %s: %v\nconsole:\n%s", p.Name, what, err, p.ConsoleLog())
	}
}

// Screenshot saves a PNG of the viewport as dir/<name>.png and returns the bytes.
func (p *Page) Screenshot(dir, name string) []byte {
	p.tb.Helper()
	ctx, cancel := p.timeout(actionWait)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.tb.Fatalf("%s: screenshot: %v", p.Name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.tb.Fatalf("write %s: %v", path, err)
	}
	return buf
}
