"""An applet script that imports a module nobody has."""
import bokeh_applet_test_module_that_does_not_exist  # noqa: F401
