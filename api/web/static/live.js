// live.js: filled in by the browser issue
