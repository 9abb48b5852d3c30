// Package cpuprofile lets the server programs write a CPU profile of their whole run, for
// bokeh-bench --profile-dir: with $BOKEH_CPUPROFILE set to a file name, Start begins
// profiling and the returned function (called at exit) writes the profile. A "%p" in the
// name becomes the process id, so that workers started with the same environment write
// profiles of their own.
package cpuprofile

import (
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
)

// Env names the profile file.
const Env = "BOKEH_CPUPROFILE"

// Start starts profiling when $BOKEH_CPUPROFILE is set; call the result before exiting.
func Start(log *slog.Logger) (stop func()) {
	path := strings.ReplaceAll(os.Getenv(Env), "%p", strconv.Itoa(os.Getpid()))
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Warn("cpu profile not written", "path", path, "err", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		log.Warn("cpu profile not written", "path", path, "err", err)
		return func() {}
	}
	log.Info("writing cpu profile", "path", path)
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
