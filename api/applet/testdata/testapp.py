"""A small applet for the tests: one slider whose callback echoes the value into its title
and appends it to its tags, raises for 13 and blocks for 99 until /bokeh/testapp/release is
posted."""
import threading

from flask import request

from bokeh.models.widgets import HBox, Slider
from bokeh.properties import Instance
from bokeh.server.app import bokeh_app
from bokeh.server.utils.plugins import object_page

RELEASE = threading.Event()
WAITING = []  # callbacks blocked on RELEASE


class TestApp(HBox):
    extra_generated_classes = [["TestApp", "TestApp", "HBox"]]

    slider = Instance(Slider)

    @classmethod
    def create(cls, start=0):
        obj = cls()
        obj.slider = Slider(title="value %s" % start, name="s", value=start, start=0, end=100, step=1)
        obj.children.append(obj.slider)
        return obj

    def setup_events(self):
        super(TestApp, self).setup_events()
        if self.slider:
            self.slider.on_change("value", self, "changed")

    def changed(self, obj, attr, old, new):
        if new == 13:
            raise RuntimeError("unlucky 13")
        if new == 99:
            WAITING.append(obj)
            RELEASE.wait(60)
            WAITING.remove(obj)
        self.slider.title = "value %s" % new
        self.slider.tags = list(self.slider.tags) + [new]


@bokeh_app.route("/bokeh/testapp/")
@object_page("testapp")
def make_app():
    return TestApp.create(int(request.args.get("start", "0")))


@bokeh_app.route("/bokeh/testapp/release", methods=["POST"])
def release():
    RELEASE.set()
    return "released %s" % request.get_data(as_text=True)


@bokeh_app.route("/bokeh/testapp/waiting")
def waiting():
    return str(len(WAITING))


@bokeh_app.route("/bokeh/testapp/hello/<name>")
def hello(name):
    user = bokeh_app.current_user()
    return "hello %s from %s" % (name, user.username if user else "nobody"), 201, {"X-Applet": "yes"}
