"""bokeh-server applet host: runs one bokeh 0.8 applet script for the Go bokeh-server.

bokeh-server (Go) starts this program when it is given --script FILE, under the Python the
operator chose (--script-python), with the operator's environment, so that the operator's
bokeh 0.8 is importable. The Go server owns documents, users, permissions, storage and
websockets; this process only builds and changes bokeh models when asked, and keeps no
document between calls.

Wire (see wire.go): fd 3 carries requests from Go, fd 4 carries replies to Go; stdout and
stderr are the script's own output, which Go logs with a prefix. Each message is one header
line of strict JSON holding "payload": N, then exactly N bytes of payload (bokeh JSON, which
may hold bare NaN/Infinity). The first message is this process's "hello". Requests carry an
"id" and are answered in any order, each on a thread of its own (at most --threads at once).
When fd 3 ends (the server is gone) this process exits at once.
"""

import argparse
import importlib.util
import json
import os
import sys
import threading
import traceback
import types
from concurrent.futures import ThreadPoolExecutor

# Debian package names of the modules bokeh 0.8 and its applets import, for start-up errors.
DEBIAN_PACKAGES = {
    "numpy": "python3-numpy",
    "pandas": "python3-pandas",
    "flask": "python3-flask",
    "werkzeug": "python3-werkzeug",
    "jinja2": "python3-jinja2",
    "requests": "python3-requests",
    "six": "python3-six",
    "dateutil": "python3-dateutil",
    "pytz": "python3-tz",
    "yaml": "python3-yaml",
    "markupsafe": "python3-markupsafe",
    "itsdangerous": "python3-itsdangerous",
}

# Request headers that carry credentials: the host never decides who may do what.
SECRET_HEADERS = {"cookie", "authorization", "bokehuser-api-key", "bokeh-api-key"}


class Wire:
    """Frames of one header line (strict JSON with "payload": N) plus N payload bytes."""

    def __init__(self, rfd, wfd):
        self.r = os.fdopen(rfd, "rb", buffering=1 << 16)
        self.w = os.fdopen(wfd, "wb", buffering=1 << 16)
        self.lock = threading.Lock()

    def read(self):
        line = self.r.readline()
        if not line:
            return None, None
        head = json.loads(line)
        n = int(head.get("payload", 0))
        payload = self.r.read(n) if n else b""
        if len(payload) != n:
            return None, None
        return head, payload

    def write(self, head, payload=b""):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        head = dict(head, payload=len(payload))
        line = json.dumps(head, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
        with self.lock:
            self.w.write(line)
            if payload:
                self.w.write(payload)
            self.w.flush()


class ScriptError(Exception):
    """A start-up failure with a hint of what to install or fix."""

    def __init__(self, message, hint=""):
        super().__init__(message)
        self.hint = hint


def missing_module_hint(exc):
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name == "bokeh":
        return ("bokeh 0.8 is not importable by %s: install it, or put it on PYTHONPATH "
                "(for the copy in the project workspace: PYTHONPATH=../shared/bokeh-python/shims:"
                "../shared/bokeh-python)" % sys.executable)
    pkg = DEBIAN_PACKAGES.get(name)
    if pkg:
        return "install the Python module %r for %s: apt-get install %s (Debian) or pip install %s" % (
            name, sys.executable, pkg, name)
    if name:
        return "install the Python module %r for %s" % (name, sys.executable)
    return ""


class Applet:
    """The imported script: its Flask routes and the stand-ins it was given."""

    def __init__(self, script, threads):
        self.script = os.path.abspath(script)
        self.threads = threads
        self.local = threading.local()

    # -- start-up -------------------------------------------------------------------------

    def load(self):
        try:
            import flask
            import bokeh
            from bokeh.document import Document
            from bokeh.plot_object import PlotObject, Viewable
            from bokeh import protocol
        except ImportError as e:
            raise ScriptError("cannot import bokeh 0.8 and what it needs: %s" % e, missing_module_hint(e))
        self.flask, self.Document, self.protocol = flask, Document, protocol
        self.bokeh_version = getattr(bokeh, "__version__", "unknown")

        self.app = flask.Flask("bokeh_applet_host", static_folder=None)
        self.app.config["PROPAGATE_EXCEPTIONS"] = True
        self.blueprint = self.make_blueprint(flask)
        self.install_standins(bokeh)

        if not os.path.isfile(self.script):
            raise ScriptError("script %s: no such file" % self.script, "check the --script path")
        # As the original server did (imp.load_source), with importlib: imp is gone in 3.12.
        sys.path.append(os.path.dirname(self.script))
        spec = importlib.util.spec_from_file_location("_bokeh_app", self.script)
        module = importlib.util.module_from_spec(spec)
        sys.modules["_bokeh_app"] = module
        try:
            spec.loader.exec_module(module)
        except ImportError as e:
            raise ScriptError("script %s failed to import: %s: %s" % (self.script, type(e).__name__, e),
                              missing_module_hint(e))
        except SyntaxError as e:
            raise ScriptError("script %s has a syntax error: %s" % (self.script, e), "fix the script")
        except BaseException as e:
            raise ScriptError("script %s raised while it was imported: %s: %s" % (
                self.script, type(e).__name__, e), "fix the script")
        self.app.register_blueprint(self.blueprint)

        Viewable._preload_models()
        self.callback_types = sorted({
            cls.__view_model__ for cls in Viewable.model_class_reverse_map.values()
            if getattr(cls, "setup_events", None) is not PlotObject.setup_events})
        generated = set()
        for cls in Viewable.model_class_reverse_map.values():
            for triple in getattr(cls, "extra_generated_classes", None) or []:
                generated.add(tuple(str(x) for x in triple))
        routes = []
        for rule in self.app.url_map.iter_rules():
            view = self.app.view_functions[rule.endpoint]
            page = getattr(view, "_bokeh_object_page", None)
            routes.append({
                "rule": rule.rule,
                "methods": sorted(m for m in rule.methods if m not in ("HEAD", "OPTIONS")),
                "endpoint": rule.endpoint,
                "object_page": page[0] if page else None,
            })
        return {
            "routes": routes,
            "callback_types": self.callback_types,
            "generated_classes": sorted(list(t) for t in generated),
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "bokeh": self.bokeh_version,
        }

    def make_blueprint(self, flask):
        host = self

        class AppletBlueprint(flask.Blueprint):
            """bokeh.server.app.bokeh_app as a script sees it: routes and the current user."""

            def current_user(self):
                name = getattr(host.local, "user", None)
                return types.SimpleNamespace(username=name) if name else None

            def __getattr__(self, name):
                if name in ("backend", "backbone_storage", "servermodel_storage",
                            "authentication", "publisher", "wsmanager"):
                    raise AttributeError(
                        "bokeh_app.%s is not available: bokeh-server (Go) keeps storage, users and "
                        "websockets to itself; applets build models in object_page functions and "
                        "change them in callbacks" % name)
                raise AttributeError(name)

        # Flask >= 2.0.1 refuses dots in blueprint names; endpoints keep the original's
        # "bokeh.server.<view>" names as in Flask 0.10 (the shims do the same).
        try:
            bp = AppletBlueprint("bokeh.server", "bokeh.server")
        except ValueError:
            bp = AppletBlueprint("bokeh_server", "bokeh.server")
            bp.name = "bokeh.server"
        return bp

    def install_standins(self, bokeh):
        """bokeh.server.app and bokeh.server.utils.plugins as the script expects them, without
        the original server's package (its storage, zmq and tornado parts are not needed)."""
        server_dir = os.path.join(os.path.dirname(bokeh.__file__), "server")
        server = types.ModuleType("bokeh.server")
        server.__path__ = [server_dir]
        utils = types.ModuleType("bokeh.server.utils")
        utils.__path__ = [os.path.join(server_dir, "utils")]
        app = types.ModuleType("bokeh.server.app")
        app.bokeh_app = self.blueprint
        app.app = self.app
        plugins = types.ModuleType("bokeh.server.utils.plugins")
        plugins.object_page = object_page
        server.app, server.utils, utils.plugins = app, utils, plugins
        bokeh.server = server
        sys.modules.update({
            "bokeh.server": server,
            "bokeh.server.utils": utils,
            "bokeh.server.app": app,
            "bokeh.server.utils.plugins": plugins,
        })

    # -- calls ----------------------------------------------------------------------------

    def request_context(self, head, body=b""):
        headers = [(k, v) for k, v in head.get("headers") or [] if k.lower() not in SECRET_HEADERS]
        return self.app.test_request_context(
            head.get("path") or "/", base_url=head.get("base_url") or None,
            method=head.get("method") or "GET", headers=headers,
            query_string=head.get("query") or "", data=body)

    def bind(self, doc):
        """What the original's init_bokeh did: curdoc() is doc inside this request."""
        self.flask.request.bokeh_server_document = doc
        doc.autostore = False
        doc.autoadd = False

    def dump_dirty(self, doc):
        # Models that callbacks created and made reachable count too (the original lost
        # those that were never added with curdoc().add/_add_all).
        doc._add(*doc.context.references())
        dirty = [m for m in doc._models.values() if getattr(m, "_dirty", False)]
        return self.protocol.serialize_json(doc.dump(*dirty))

    def route(self, head, payload):
        """A GET (or other method) of one of the script's routes."""
        self.local.user = head.get("user")
        try:
            with self.request_context(head, payload) as ctx:
                exc = ctx.request.routing_exception
                if exc is not None:
                    code = getattr(exc, "code", 404)
                    reply = {"kind": "response", "status": code, "headers": []}
                    new_url = getattr(exc, "new_url", None)
                    if new_url:
                        reply["headers"].append(["Location", new_url])
                    return reply, b""
                view = self.app.view_functions[ctx.request.url_rule.endpoint]
                page = getattr(view, "_bokeh_object_page", None)
                if page is None:
                    resp = self.app.full_dispatch_request()
                    return {"kind": "response", "status": resp.status_code,
                            "headers": [[k, v] for k, v in resp.headers.items()]}, resp.get_data()
                return self.object_page(head, page, ctx.request.view_args or {})
        finally:
            self.local.user = None

    def object_page(self, head, page, view_args):
        """What object_page's wrapper did, but in the document Go created (§3.2 of APPLETS.md)."""
        prefix, func = page
        doc = self.Document(head["plot_context"])
        doc.docid = head["docid"]
        self.bind(doc)
        obj = func(**view_args)
        if not hasattr(obj, "references") or not hasattr(obj, "_id"):
            raise TypeError("the object_page(%r) function %s returned %r, not a bokeh model" % (
                prefix, getattr(func, "__name__", func), obj))
        doc.add(obj)
        classes = getattr(obj, "extra_generated_classes", []) or []
        return {
            "kind": "object",
            "objid": obj._id,
            "extra_generated_classes": [[str(m), str(c), str(p)] for m, c, p in classes],
        }, self.dump_dirty(doc)

    def update(self, head, payload):
        """A widget change: rebuild the document (setup_events attaches the callbacks again),
        load the change with events so that the callbacks run, answer the dirty models."""
        body = json.loads(payload)
        # Built before curdoc() is bound, as the original's transaction did.
        doc = self.Document(body["models"])
        doc.docid = head["docid"]
        self.local.user = head.get("user")
        try:
            with self.request_context(head):
                self.bind(doc)
                doc.load(*body["changes"], events="existing", dirty=True)
                return {}, self.dump_dirty(doc)
        finally:
            self.local.user = None


def object_page(prefix):
    """bokeh.server.utils.plugins.object_page: marks the function; the host runs it when Go
    asks for the page (Go creates the document, stores the models and renders the page)."""

    def decorator(func):
        def wrapper(*args, **kwargs):
            raise RuntimeError("object_page(%r) pages are built by bokeh-server, not called" % prefix)

        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        wrapper._bokeh_object_page = (prefix, func)
        return wrapper

    return decorator


def serve(applet, wire):
    ops = {"route": applet.route, "update": applet.update}
    pool = ThreadPoolExecutor(max_workers=applet.threads, thread_name_prefix="applet")

    def run(head, payload):
        rid = head.get("id")
        try:
            op = ops.get(head.get("op"))
            if op is None:
                raise ValueError("unknown op %r" % head.get("op"))
            reply, out = op(head, payload)
            wire.write(dict(reply, id=rid, ok=True), out)
        except BaseException as e:
            tb = traceback.format_exc()
            sys.stderr.write("applet host: %s failed:\n%s" % (head.get("op"), tb))
            sys.stderr.flush()
            wire.write({"id": rid, "ok": False, "error": "%s: %s" % (type(e).__name__, e)})

    while True:
        head, payload = wire.read()
        if head is None:
            # The server is gone: leave now, even with callbacks still running.
            os._exit(0)
        pool.submit(run, head, payload)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    wire = Wire(3, 4)
    applet = Applet(args.script, max(1, args.threads))
    try:
        hello = applet.load()
    except BaseException as e:
        traceback.print_exc()
        sys.stderr.flush()
        if isinstance(e, ScriptError):
            error, hint = str(e), e.hint
        else:
            error, hint = "%s: %s" % (type(e).__name__, e), ""
        wire.write({"op": "hello", "ok": False, "error": error, "hint": hint})
        sys.exit(3)
    wire.write(dict(hello, op="hello", ok=True))
    serve(applet, wire)


if __name__ == "__main__":
    main()
