(function() {
  // bokeh-server autoload for element {{.ElementID}} (PROTOCOL.md §6.3).
  var elementid = {{.ElementIDJSON}};
  var js_url = {{.JSURLJSON}};
  var css_urls = {{.CSSURLsJSON}};
  var live_url = {{.LiveURLJSON}};
  if (typeof window._bokeh_onload_callbacks === "undefined") {
    window._bokeh_onload_callbacks = [];
  }
  var elt = document.getElementById(elementid);
  if (elt == null) {
    console.log("Bokeh: ERROR: autoload.js configured with elementid '" + elementid + "' but no matching script tag was found.");
    return false;
  }
  var all_models = null;
  function plot() { Bokeh.embed.inject_plot(elementid, all_models); }
  if (typeof Bokeh !== "undefined") {
    plot();
    return;
  }
  window._bokeh_onload_callbacks.push(plot);
  if (window._bokeh_is_loading) {
    return;
  }
  window._bokeh_is_loading = true;
  var s = document.createElement("script");
  s.src = js_url;
  s.async = true;
  s.onreadystatechange = s.onload = function() {
    if (s.readyState && s.readyState !== "loaded" && s.readyState !== "complete") { return; }
    s.onreadystatechange = s.onload = null;
    css_urls.forEach(function(url) { Bokeh.embed.inject_css(url); });
    // live.js (reconnects a closed websocket) must hook BokehJS before the first plot.
    var l = document.createElement("script");
    l.src = live_url;
    l.onload = l.onerror = function() {
      window._bokeh_onload_callbacks.forEach(function(cb) { cb(); });
    };
    document.getElementsByTagName("head")[0].appendChild(l);
  };
  s.onerror = function() { console.warn("Bokeh: failed to load " + js_url); };
  document.getElementsByTagName("head")[0].appendChild(s);
}());
