package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/applet"
)

// startAppletHost starts the Python host of --script as a child that dies with us; its
// output goes to our stderr, prefixed. A missing interpreter or a script that fails to
// import stops the start-up with what to install or fix.
func startAppletHost(ctx context.Context, o *options, log *slog.Logger) (*applet.Host, error) {
	h, err := applet.Start(ctx, applet.Options{
		Script:      o.Script,
		Python:      o.ScriptPython,
		Threads:     o.ScriptThreads,
		CallTimeout: o.ScriptTimeout,
		Output:      os.Stderr,
		Prefix:      "[applet-host] ",
		Start:       getSpawner().start,
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("--script: %w", err)
	}
	return h, nil
}

// logAppletPages says where the script's pages are.
func logAppletPages(log *slog.Logger, cfg api.Config, base string) {
	if cfg.Applets == nil {
		return
	}
	for _, r := range cfg.Applets.Info().Routes {
		log.Info("applet route", "url", base+r.Rule, "methods", r.Methods, "object_page", r.ObjectPage != nil)
	}
}
