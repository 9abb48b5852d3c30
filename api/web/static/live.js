// live.js: keeps bokeh-server pages live when their websocket closes.
//
// BokehJS 0.8 opens one websocket per page and never reconnects: a page whose worker dies
// stops updating. This script, loaded right after bokeh.js, watches that socket. When it
// closes, it asks the server for a worker again (bokeh/wsurl/, with backoff), reopens the
// socket, resubscribes every topic, waits until the worker confirms the document topics
// (so no write can fall between the reload and the first push), reloads each document's
// models over HTTP and only then replays the pushes that arrived meanwhile, so the page ends
// at the latest state; document lists fetch the user's documents again.
//
// A worker that may have missed changes (a resync) closes the socket with code 4001: the
// page reconnects at once, without backoff, and reloads as above. Before that close the
// worker sends debug:debug:reload, on which BokehJS alone would reload the whole page (what
// a page without this script does); here it is held back, and handed to BokehJS only if no
// resync close follows within a second.
// State is shown in #bokeh-connection (if the page has one) and in window.BokehLive.
// On multi-user document lists it also passes the user's docchange notices to BokehJS.
(function () {
  "use strict";
  if (typeof Bokeh === "undefined" || !Bokeh.require) {
    return;
  }
  var $ = Bokeh.$;
  var serverutils = Bokeh.require("server/serverutils");
  // subscribed: the topics the worker confirmed (subscribesuccess) on the current socket.
  var live = window.BokehLive = { state: "connecting", reconnects: 0, reloads: 0, resyncs: 0, subscribed: {} };
  var unloading = false;
  var backoffFirst = 250, backoffMax = 10000, jitter = 0.3;
  var confirmWait = 3000; // reload anyway if a subscription is not confirmed by then
  var closeResync = 4001, resyncSpread = 250; // a resync reconnects within resyncSpread ms
  var heldReload = null; // timer of a debug:debug:reload held back (see above)

  window.addEventListener("beforeunload", function () { unloading = true; });

  function show(state) {
    live.state = state;
    var badge = document.getElementById("bokeh-connection");
    if (!badge) {
      return;
    }
    var text = { connecting: "connecting", live: "live", reconnecting: "reconnecting", stale: "offline" }[state] || state;
    var cls = { live: "label-success", reconnecting: "label-warning", stale: "label-danger" }[state] || "label-default";
    badge.textContent = text;
    badge.className = "label " + cls;
  }

  function prefix() {
    return Bokeh.Config.prefix || "/";
  }

  function plotTopics(w) {
    var docs = [];
    Object.keys(w.auth).forEach(function (topic) {
      var id = topic.slice("bokehplot:".length);
      if (topic.indexOf("bokehplot:") === 0 && id.indexOf("temporary") !== 0) {
        docs.push(id);
      }
    });
    return docs;
  }

  // refetchUserDocs makes document lists fetch the user's documents again, as BokehJS does
  // on a docchange notice: one may have been missed while the socket was down.
  function refetchUserDocs(w) {
    Object.keys(w.auth).forEach(function (topic) {
      if (topic.indexOf("bokehuser:") === 0) {
        w.trigger("msg:" + topic, '{"msgtype": "docchange"}');
      }
    });
  }

  // retryAfter is the Retry-After of a failed request in ms (0: none). The server sends
  // one with every 503 and 429 (a worker restarting, everyone reconnecting at once).
  function retryAfter(xhr) {
    var secs = xhr && xhr.getResponseHeader ? parseInt(xhr.getResponseHeader("Retry-After"), 10) : 0;
    return secs > 0 ? secs * 1000 : 0;
  }

  // fetchDoc loads one document's models while s is the socket; a refusal that says when
  // to come back (429 or 503 with Retry-After) is tried again then, plus jitter, so that a
  // busy server is not left with pages that never reloaded.
  function fetchDoc(w, s, docid) {
    var loaded = $.Deferred();
    (function attempt() {
      $.get(prefix() + "bokeh/bokehinfo/" + docid + "/").done(function (data) {
        if (w.s === s) {
          Bokeh.load_models(data.all_models);
        }
        loaded.resolve();
      }).fail(function (xhr) {
        var wait = retryAfter(xhr);
        if (w.s !== s || !wait || (xhr.status !== 429 && xhr.status !== 503)) {
          loaded.reject();
          return;
        }
        setTimeout(attempt, wait + Math.random() * wait * jitter);
      });
    }());
    return loaded.promise();
  }

  // reload fetches each watched document again and applies it, then the pushes that
  // arrived on socket s meanwhile. Nothing happens if s was replaced in the meantime.
  function reload(w, s, queue, done) {
    var pending = plotTopics(w).map(function (docid) { return fetchDoc(w, s, docid); });
    $.when.apply($, pending).always(function () {
      if (w.s !== s) {
        return;
      }
      live.reloads++;
      refetchUserDocs(w);
      s.onmessage = w.onmessage;
      queue.forEach(function (msg) { w.onmessage(msg); });
      done();
    });
  }

  function attach(w, s) {
    s.onclose = function (ev) {
      if (unloading || w.s !== s) {
        return;
      }
      show("reconnecting");
      if (!resynced(w, ev)) {
        schedule(w, backoffFirst);
      }
    };
  }

  // schedule reconnects after delay plus a random part of it, so that the pages of a
  // worker that died do not all come back in the same instant.
  function schedule(w, delay) {
    setTimeout(function () { reconnect(w, delay); }, delay + Math.random() * delay * jitter);
  }

  // resynced handles a resync close: the held reload frame is dropped and the page
  // reconnects soon (spread over resyncSpread, so that a worker's pages do not all come
  // back in the same instant). It reports whether ev was one.
  function resynced(w, ev) {
    if (!ev || ev.code !== closeResync) {
      return false;
    }
    live.resyncs++;
    if (heldReload !== null) {
      clearTimeout(heldReload);
      heldReload = null;
    }
    setTimeout(function () { reconnect(w, backoffFirst); }, Math.random() * resyncSpread);
    return true;
  }

  function reconnect(w, delay) {
    var next = Math.min(delay * 2, backoffMax);
    $.get(prefix() + "bokeh/wsurl/").done(function (url) {
      var s, queue = [];
      try {
        s = new WebSocket(url);
      } catch (e) {
        schedule(w, next);
        return;
      }
      var opened = $.Deferred();
      w._connected = opened;
      w.connected = opened.promise();
      w.s = s;
      live.subscribed = {};
      // Where the page is connected now (BokehJS only sets these for the first socket).
      w.ws_conn_string = url;
      Bokeh.Config.ws_conn_string = url;
      // Document topics whose subscribesuccess has not arrived yet; the reload waits for
      // them, because a write published before the worker's subscription took effect but
      // after the reload read the document would otherwise be lost.
      var unconfirmed = {}, reloading = false;
      plotTopics(w).forEach(function (docid) { unconfirmed["bokehplot:" + docid] = true; });
      function startReload() {
        if (reloading || w.s !== s) {
          return;
        }
        reloading = true;
        reload(w, s, queue, function () {
          live.reconnects++;
          show("live");
        });
      }
      s.onmessage = function (msg) {
        queue.push(msg);
        var data = String(msg.data), i = data.indexOf(":");
        i = data.indexOf(":", i + 1);
        var topic = data.substring(0, i);
        if (unconfirmed[topic] && data.indexOf("subscribesuccess", i) > 0) {
          delete unconfirmed[topic];
          if (Object.keys(unconfirmed).length === 0) {
            startReload();
          }
        }
      };
      s.onopen = function () {
        opened.resolve();
        Object.keys(w.auth).forEach(function (topic) { w.subscribe(topic, w.auth[topic]); });
        if (Object.keys(unconfirmed).length === 0) {
          startReload();
        } else {
          setTimeout(startReload, confirmWait);
        }
      };
      s.onclose = function (ev) {
        if (unloading || w.s !== s) {
          return;
        }
        var wasOpen = opened.state() === "resolved";
        show("reconnecting");
        if (!resynced(w, ev)) {
          schedule(w, wasOpen ? backoffFirst : next);
        }
      };
    }).fail(function (xhr) {
      // No worker up yet (a 503 says when to ask again) or the server is unreachable.
      show("stale");
      schedule(w, Math.max(next, retryAfter(xhr)));
    });
  }

  // BokehJS's document list (server_page) listens to bokehuser:defaultuser whoever is logged
  // in (PROTOCOL.md §7.3 A). In multi-user mode the page names its user and a token of its
  // session, which user topics need there: subscribe to that user's docchange notices with it
  // and hand them to BokehJS's listener, so the list stays live. BokehJS's own subscription
  // (no credentials, another user's topic) is not sent.
  function followUser(w) {
    var badge = document.getElementById("bokeh-connection");
    var user = badge && badge.getAttribute("data-user");
    if (!user) {
      return;
    }
    var auth = badge.getAttribute("data-user-auth") || null;
    var subscribe = w.subscribe;
    w.subscribe = function (topic, topicAuth) {
      if (topic === "bokehuser:defaultuser" && topicAuth === null) {
        if (user !== "defaultuser") {
          return $.Deferred().resolve().promise();
        }
        topicAuth = auth;
      }
      return subscribe.call(this, topic, topicAuth);
    };
    if (user === "defaultuser") {
      return;
    }
    w.subscribe("bokehuser:" + user, auth);
    w.on("msg:bokehuser:" + user, function (msg) {
      w.trigger("msg:bokehuser:defaultuser", msg);
    });
  }

  // recordSubscriptions notes each subscribesuccess in live.subscribed, so that a page (or a
  // test) can tell when updates of a topic will reach it; the document list, for one, has no
  // other sign (BokehJS only sets Config.clientid for plot topics).
  function recordSubscriptions(w) {
    var inner = w.onmessage;
    w.onmessage = function (msg) {
      var data = String(msg.data), i = data.indexOf(":");
      i = data.indexOf(":", i + 1);
      if (i > 0 && data.indexOf("subscribesuccess", i) > 0) {
        live.subscribed[data.substring(0, i)] = true;
      }
      if (data === "debug:debug:reload") {
        var self = this, args = arguments;
        heldReload = setTimeout(function () {
          heldReload = null;
          inner.apply(self, args);
        }, 1000);
        return null;
      }
      return inner.apply(this, arguments);
    };
    w.s.onmessage = w.onmessage;
  }

  function watch(w) {
    var s = w.s;
    if (!s) {
      return;
    }
    recordSubscriptions(w);
    followUser(w);
    var onopen = s.onopen;
    s.onopen = function () {
      show("live");
      return onopen.apply(this, arguments);
    };
    if (s.readyState === WebSocket.OPEN) {
      show("live");
    }
    attach(w, s);
  }

  var utility = serverutils.utility;
  var makeWebsocket = utility.make_websocket;
  utility.make_websocket = function () {
    var first = serverutils.wswrapper == null;
    var resp = makeWebsocket.apply(this, arguments);
    if (first) {
      resp.done(function () { watch(serverutils.wswrapper); });
    }
    return resp;
  };
  show("connecting");
}());
