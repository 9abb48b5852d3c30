"""An applet script whose route would replace one of bokeh-server's own."""
from bokeh.server.app import bokeh_app


@bokeh_app.route("/bokeh/doc/<docid>/")
def mine(docid):
    return docid
