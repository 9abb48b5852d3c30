"""An applet script that fails while it is imported."""
from bokeh.server.app import bokeh_app

raise ValueError("this script is broken on purpose")
