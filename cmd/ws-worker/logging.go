package main

import (
	"io"
	"log/slog"
)

// newLogger builds the worker's logger: info by default, debug with -v or -d, and with
// -d also the source location of each record.
func newLogger(o options, w io.Writer) *slog.Logger {
	h := &slog.HandlerOptions{Level: slog.LevelInfo, AddSource: o.debug}
	if o.verbose || o.debug {
		h.Level = slog.LevelDebug
	}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, h))
	}
	return slog.New(slog.NewTextHandler(w, h))
}
