// Package applettest finds what applet tests need: bokeh 0.8.2 with its Python 3.11 shims
// (the project workspace's ../shared/bokeh-python) and a Python that can import it.
package applettest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Bokeh is a usable bokeh 0.8.2.
type Bokeh struct {
	Dir    string // the bokeh-python folder: bokeh/, shims/, examples/
	Python string // interpreter that imports it
	Env    []string
}

// Example is the path of one of bokeh's own files, e.g. examples/app/sliders_applet/sliders_app.py.
func (b Bokeh) Example(rel string) string { return filepath.Join(b.Dir, filepath.FromSlash(rel)) }

// Find returns bokeh-python from $BOKEH_PYTHON_DIR, else ../shared/bokeh-python beside the
// repository. When there is none (a clone outside the project workspace) the test is
// skipped with a message saying so; when it is there but Python cannot import it (missing
// Debian packages), the test fails with what to install.
func Find(tb testing.TB) Bokeh {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs the real Python applet host: not with -short (make test runs it)")
	}
	dir := os.Getenv("BOKEH_PYTHON_DIR")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "shared", "bokeh-python")
	}
	dir, _ = filepath.Abs(dir)
	if _, err := os.Stat(filepath.Join(dir, "bokeh", "__init__.py")); err != nil {
		tb.Skipf("APPLET TEST NOT RUN: bokeh 0.8.2 is not at %s (the project workspace's "+
			"../shared/bokeh-python; set BOKEH_PYTHON_DIR to use another copy)", dir)
	}
	b := Bokeh{Dir: dir, Python: Python(),
		Env: []string{"PYTHONPATH=" + filepath.Join(dir, "shims") + string(os.PathListSeparator) + dir,
			"BOKEH_BROWSER=none"}}
	cmd := exec.Command(b.Python, "-c", "import numpy, pandas, flask, bokeh.plotting")
	cmd.Env = append(os.Environ(), b.Env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%s cannot import bokeh 0.8.2 from %s: %v\n%s\nrun scripts/setup.sh, which installs "+
			"the Debian packages applets need (python3-numpy python3-pandas python3-flask ...)",
			b.Python, dir, err, lastLines(string(out), 5))
	}
	return b
}

// Python is $BOKEH_APPLET_PYTHON, else Debian's /usr/bin/python3 (a python3 earlier on
// $PATH, e.g. pyenv's, lacks the Debian packages), else python3.
func Python() string {
	if p := os.Getenv("BOKEH_APPLET_PYTHON"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
