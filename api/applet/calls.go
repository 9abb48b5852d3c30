package applet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrUnavailable means the host is not running right now (it crashed and is being
// restarted) or died during the call: nothing was done; retry later.
var ErrUnavailable = errors.New("applet host unavailable")

// ErrTimeout means the host did not answer within the call limit. The callback may still be
// running in the host; its result is dropped.
var ErrTimeout = errors.New("applet host did not answer in time")

// ScriptError is an exception raised by the script's code (or by bokeh) during a call.
type ScriptError struct {
	Message string // "ValueError: expected a value of type float, got bad of type str"
}

func (e *ScriptError) Error() string { return "applet script raised " + e.Message }

// Request is the HTTP request a call runs in: scripts see it as flask.request.
type Request struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`     // without the server's URL prefix
	Query   string      `json:"query"`    // raw query string
	BaseURL string      `json:"base_url"` // scheme://host + URL prefix
	Headers [][2]string `json:"headers"`  // credentials are dropped by the host
	User    *string     `json:"user"`     // the user the server resolved, nil for none
}

// RouteCall asks the host to serve one of the script's routes. For an object_page route
// the host builds the models into a new document, DocID, whose PlotContext is PlotContext.
type RouteCall struct {
	Request
	Endpoint    string          `json:"endpoint"`
	DocID       string          `json:"docid"`
	PlotContext json.RawMessage `json:"plot_context"` // [ {type, attributes} ]
	Body        []byte          `json:"-"`
}

// RouteResult is a route's answer: an object page (Models is the JSON array of the dirty
// models, bokeh's dump) or a response the script's own Flask view made.
type RouteResult struct {
	Kind                  string      `json:"kind"` // "object" or "response"
	ObjID                 string      `json:"objid"`
	ExtraGeneratedClasses [][3]string `json:"extra_generated_classes"`
	Status                int         `json:"status"`
	Headers               [][2]string `json:"headers"`
	Models                []byte      `json:"-"`
	Body                  []byte      `json:"-"`
}

// UpdateCall asks the host to apply changes to a document and run its callbacks. Payload is
// {"models": [the document's reachable models], "changes": [{type, attributes}]}.
type UpdateCall struct {
	Request
	DocID   string `json:"docid"`
	Payload []byte `json:"-"`
}

// Route serves one of the script's routes.
func (h *Host) Route(ctx context.Context, c RouteCall) (RouteResult, error) {
	f, err := h.call(ctx, "route", c, c.Body)
	if err != nil {
		return RouteResult{}, err
	}
	var r RouteResult
	if err := json.Unmarshal(f.head, &r); err != nil {
		return r, fmt.Errorf("applet host: route reply: %w", err)
	}
	switch r.Kind {
	case "object":
		r.Models = f.payload
	case "response":
		r.Body = f.payload
	default:
		return r, fmt.Errorf("applet host: route reply of unknown kind %q", r.Kind)
	}
	return r, nil
}

// Update applies changes and returns the JSON array of the models that changed.
func (h *Host) Update(ctx context.Context, c UpdateCall) ([]byte, error) {
	f, err := h.call(ctx, "update", c, c.Payload)
	if err != nil {
		return nil, err
	}
	return f.payload, nil
}

// call sends op with the fields of req as its header and waits for a successful reply.
func (h *Host) call(ctx context.Context, op string, req any, payload []byte) (frame, error) {
	p := h.current()
	if p == nil {
		return frame{}, fmt.Errorf("%w: it is restarting", ErrUnavailable)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return frame{}, fmt.Errorf("applet host: encode %s: %w", op, err)
	}
	var head map[string]any
	if err := json.Unmarshal(b, &head); err != nil {
		return frame{}, fmt.Errorf("applet host: encode %s: %w", op, err)
	}
	head["op"] = op
	ctx, cancel := context.WithTimeout(ctx, h.opts.CallTimeout)
	defer cancel()
	f, err := p.call(ctx, head, payload)
	if errors.Is(err, context.DeadlineExceeded) {
		return frame{}, fmt.Errorf("%w (%v, %s)", ErrTimeout, h.opts.CallTimeout, op)
	}
	if err != nil {
		return frame{}, err
	}
	var status struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(f.head, &status); err != nil {
		return frame{}, fmt.Errorf("applet host: %s reply: %w", op, err)
	}
	if !status.OK {
		return frame{}, &ScriptError{Message: status.Error}
	}
	return f, nil
}
