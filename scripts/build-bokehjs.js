// Node helper for build-bokehjs.sh.  It redoes the "deploy" task of the
// bokehjs package's Gruntfile.coffee (build + requirejs + cssmin) with the
// pinned 2014/2015 tools, without grunt and its plugins.
//
//   node build-bokehjs.js check-tools NODE_MODULES CONSUMER:NAME=VERSION...
//       check that each consumer ("." = the top level) resolves NAME to
//       exactly VERSION, and that nothing else is installed
//   node build-bokehjs.js build SRC NODE_MODULES BUILD
//       SRC/src/** -> BUILD/js (unbundled AMD tree), BUILD/dist/{js,css,images}
//   node build-bokehjs.js smoke VERSION FILE...
//       each bundle parses and carries its version string
"use strict";
process.noDeprecation = true; // eco and coffee-script 1.x call require("sys")

const fs = require("fs");
const path = require("path");
const vm = require("vm");

const log = (msg) => process.stderr.write(msg + "\n");

function fail(msg) {
  log("build-bokehjs: " + msg);
  process.exit(1);
}

// ---- check-tools ------------------------------------------------------------

function checkTools(nodeModules, specs) {
  const problems = [];
  for (const spec of specs) {
    const m = spec.match(/^(.*):(.*)=(.*)$/);
    if (!m) fail("bad tool spec " + spec);
    const [, consumer, name, want] = m;
    const base = consumer === "." ? path.dirname(nodeModules) : path.join(nodeModules, consumer);
    const pkg = require.resolve(name + "/package.json", { paths: [base] });
    const got = JSON.parse(fs.readFileSync(pkg, "utf8")).version;
    if (got !== want) problems.push(`${consumer} -> ${name}: want ${want}, got ${got}`);
  }
  // every installed package directory, nested ones included
  const installed = [];
  (function walk(dir) {
    for (const entry of fs.readdirSync(dir)) {
      if (entry.startsWith(".")) continue;
      const p = path.join(dir, entry);
      if (entry.startsWith("@")) { walk(p); continue; }
      installed.push(path.relative(nodeModules, p));
      if (fs.existsSync(path.join(p, "node_modules"))) walk(path.join(p, "node_modules"));
    }
  })(nodeModules);
  if (installed.length !== specs.length) {
    problems.push(`expected ${specs.length} packages, found ${installed.length}: ${installed.sort().join(" ")}`);
  }
  if (problems.length) fail("unexpected build tools:\n  " + problems.join("\n  "));
}

// ---- build ------------------------------------------------------------------

// All files under dir, depth first, sorted by name (deterministic order).
function listFiles(dir, out = []) {
  const entries = fs.readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listFiles(p, out);
    else out.push(p);
  }
  return out;
}

function writeFile(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

function copyTree(from, to) {
  for (const f of listFiles(from)) {
    const dest = path.join(to, path.relative(from, f));
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(f, dest);
  }
}

// grunt's "ext" option replaces everything from the first dot of the base name.
function outputName(file, fromRoot, toRoot, ext) {
  return path.join(toRoot, path.relative(fromRoot, file)).replace(/\.[^/]*$/, ext);
}

// eco 1.0.3 writes template text as CoffeeScript string literals made by
// require("sys").inspect(string).  On node 0.10/0.12, which the original
// builds ran on, that is always one single-quoted line.  Node >= 12 splits long
// strings at "\n" into  'a' +\n 'b'  lines (which break nested blocks, e.g.
// widget/dialog_template.eco: "unexpected CALL_END") and may switch to " or `
// quotes.  Give eco's preprocessor node 0.10's string inspect back.
function inspectLikeNode010(s) {
  const body = JSON.stringify(s).slice(1, -1).replace(/'/g, "\\'").replace(/\\"/g, '"');
  return "'" + body + "'";
}

function patchEco(eco, nodeModules) {
  const { Preprocessor } = require(path.join(nodeModules, "eco/lib/eco/preprocessor"));
  Preprocessor.prototype.printString = function (string) {
    if (string.length) return this.record("_print _safe " + inspectLikeNode010(string));
  };
  return eco;
}

// coffee:compile (grunt-contrib-coffee 0.7: bare false; source maps are not made)
function compileCoffee(coffee, coffeeRoot, jsRoot) {
  const files = listFiles(coffeeRoot).filter((f) => f.endsWith(".coffee"));
  for (const f of files) {
    let js;
    try {
      js = coffee.compile(fs.readFileSync(f, "utf8"), { filename: f });
    } catch (e) {
      throw new Error("coffee: " + f + ": " + e.message);
    }
    writeFile(outputName(f, coffeeRoot, jsRoot, ".js"), js);
  }
  log(`coffee: ${files.length} files (coffee-script ${coffee.VERSION})`);
}

// eco:app (grunt-eco 0.1.3 with amd: true)
function compileEco(eco, coffeeRoot, jsRoot) {
  const files = listFiles(coffeeRoot).filter((f) => f.endsWith(".eco"));
  for (const f of files) {
    const body = eco.compile(fs.readFileSync(f, "utf8")).replace(/module\.exports/, "");
    writeFile(outputName(f, coffeeRoot, jsRoot, ".js"),
      "define(function(){\n  var template" + body + "\n  return template;\n});\n");
  }
  log(`eco: ${files.length} templates`);
}

// less:development (grunt-contrib-less 0.11: paths = [dirname(src)], filename = src)
function compileLess(less, file) {
  return new Promise((resolve, reject) => {
    const parser = new less.Parser({ paths: [path.dirname(file)], filename: file });
    parser.parse(fs.readFileSync(file, "utf8"), (err, tree) => {
      if (err) {
        reject(new Error("less: " + (less.formatError ? less.formatError(err) : err.message)));
        return;
      }
      try {
        resolve({ css: tree.toCSS({}), imported: Object.keys(parser.imports.files) });
      } catch (e) {
        reject(e);
      }
    });
  });
}

// The vendor CSS pulled in with "@import (inline)" (jquery-ui, slick-grid,
// jqrangeslider) keeps its relative url(...)s, which now resolve against
// css/bokeh.css.  Copy each file they point to from where its stylesheet
// found it to where bokeh.css will look for it (css/images, css/icons-classic,
// images/).  FontAwesome and Bokeh's own icons are inlined as data: URIs.
function copyCssAssets(srcRoot, importedFiles, cssDir) {
  const copied = new Map(); // destination -> source
  const missing = [];
  for (const sheet of importedFiles) {
    const text = fs.readFileSync(sheet, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const m of text.matchAll(/url\(\s*(['"]?)([^'")]+)\1\s*\)/g)) {
      const url = m[2].trim();
      if (/^(data:|[a-z][a-z0-9+.-]*:|\/|#|@)/i.test(url)) continue; // not a relative file
      const rel = url.split(/[?#]/)[0];
      const from = path.resolve(path.dirname(sheet), rel);
      const to = path.resolve(cssDir, rel);
      if (!fs.existsSync(from)) {
        missing.push(`${rel} (${path.relative(srcRoot, sheet)})`);
        continue;
      }
      if (copied.has(to)) {
        if (!fs.readFileSync(copied.get(to)).equals(fs.readFileSync(from))) {
          throw new Error("two different files for " + to);
        }
        continue;
      }
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(from, to);
      copied.set(to, from);
    }
  }
  return { copied: copied.size, missing };
}

// requirejs:production/development: almond + config.js, include [underscore, main]
function bundle(requirejs, srcRoot, jsRoot, optimize, out) {
  const config = {
    logLevel: 2,
    baseUrl: jsRoot,
    name: "vendor/almond/almond",
    mainConfigFile: path.join(jsRoot, "config.js"),
    include: ["underscore", "main"],
    fileExclusionRegExp: /^test/,
    wrapShim: true,
    wrap: {
      startFile: path.join(srcRoot, "src/js/_start.js.frag"),
      endFile: path.join(srcRoot, "src/js/_end.js.frag"),
    },
    optimize,
    out,
  };
  return new Promise((resolve, reject) => requirejs.optimize(config, resolve, reject));
}

async function build(srcRoot, nodeModules, buildDir) {
  const tool = (name) => require(path.join(nodeModules, name));
  const coffee = tool("coffee-script");
  const eco = patchEco(tool("eco"), nodeModules);
  const less = tool("less");
  const requirejs = tool("requirejs");
  const CleanCSS = tool("clean-css-1");

  const coffeeRoot = path.join(srcRoot, "src/coffee");
  const jsRoot = path.join(buildDir, "js");
  const dist = path.join(buildDir, "dist");

  compileCoffee(coffee, coffeeRoot, jsRoot);
  compileEco(eco, coffeeRoot, jsRoot);
  copyTree(path.join(srcRoot, "src/vendor"), path.join(jsRoot, "vendor")); // copy:vendor

  const { css, imported } = await compileLess(less, path.join(srcRoot, "src/less/bokeh.less"));
  writeFile(path.join(dist, "css/bokeh.css"), css);
  log(`less: css/bokeh.css, ${css.length} bytes (less ${less.version.join(".")}, ${imported.length} imports)`);

  // cssmin:minify (grunt-contrib-cssmin 0.6.2 calls CleanCSS.process(source, {relativeTo}))
  const minCss = CleanCSS.process(css, { relativeTo: path.join(dist, "css") });
  writeFile(path.join(dist, "css/bokeh.min.css"), minCss);
  log(`cssmin: css/bokeh.min.css, ${minCss.length} bytes`);

  const assets = copyCssAssets(srcRoot, imported, path.join(dist, "css"));
  log(`css assets: ${assets.copied} image files` +
    (assets.missing.length ? `; not found, left out: ${assets.missing.join(", ")}` : ""));

  await bundle(requirejs, srcRoot, jsRoot, "none", path.join(dist, "js/bokeh.js"));
  log(`r.js: js/bokeh.js (requirejs ${requirejs.version}, optimize none)`);
  await bundle(requirejs, srcRoot, jsRoot, "uglify2", path.join(dist, "js/bokeh.min.js"));
  log("r.js: js/bokeh.min.js (optimize uglify2)");
}

// ---- smoke ------------------------------------------------------------------

function smoke(version, files) {
  for (const f of files) {
    const src = fs.readFileSync(f, "utf8");
    new vm.Script(src, { filename: f }); // throws on a syntax error
    if (!src.includes(`Bokeh.version = '${version}'`) && !src.includes(`version="${version}"`)) {
      fail(`${f}: version string ${version} not found`);
    }
  }
}

// ---- main -------------------------------------------------------------------

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case "check-tools":
    checkTools(args[0], args.slice(1));
    break;
  case "build":
    build(args[0], args[1], args[2]).catch((e) => fail((e && e.stack) || String(e)));
    break;
  case "smoke":
    smoke(args[0], args.slice(1));
    break;
  default:
    fail("usage: node build-bokehjs.js check-tools|build|smoke ARGS...");
}
