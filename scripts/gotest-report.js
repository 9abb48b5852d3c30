// Turn `go test -json` on stdin into a short report on stdout: package result
// lines ("ok pkg 1.2s", "FAIL pkg") and build errors as they come, the full
// output of every failed test (also of a test still running when its package
// failed, e.g. on a timeout), and a closing line with counts of all tests and
// subtests.
//
// usage: go test -json ./... | node scripts/gotest-report.js [COUNTS_FILE]
// COUNTS_FILE, if given, receives "PASSED FAILED SKIPPED".
"use strict";
const fs = require("fs");
const readline = require("readline");

const countsFile = process.argv[2];
const counts = { pass: 0, fail: 0, skip: 0 };
const buffers = new Map(); // "pkg\ttest" -> output lines of a running test
const failedPackages = new Set();
const packagesWithFailedTests = new Set();
const failedTests = [];
const out = (s) => process.stdout.write(s);

function handle(ev) {
  const key = ev.Package + "\t" + ev.Test;
  switch (ev.Action) {
    case "build-output":
      out(ev.Output);
      return;
    case "output":
      if (ev.Test) {
        if (!buffers.has(key)) buffers.set(key, []);
        buffers.get(key).push(ev.Output);
      } else if (ev.Output !== "PASS\n") {
        out(ev.Output);
      }
      return;
    case "pass":
    case "skip":
      if (ev.Test) { counts[ev.Action]++; buffers.delete(key); }
      return;
    case "fail":
      if (ev.Test) {
        counts.fail++;
        failedTests.push(ev.Package + " " + ev.Test);
        packagesWithFailedTests.add(ev.Package);
        out((buffers.get(key) || []).join(""));
        buffers.delete(key);
      } else {
        failedPackages.add(ev.Package);
      }
      return;
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  let ev;
  try { ev = JSON.parse(line); } catch { out(line + "\n"); return; } // not JSON: pass through
  handle(ev);
});
rl.on("close", () => {
  // tests that never finished (a panic or a timeout in their package)
  for (const [key, lines] of buffers) {
    const [pkg, test] = key.split("\t");
    if (!failedPackages.has(pkg)) continue;
    out(`--- output of ${test} (${pkg}), which did not finish:\n` + lines.join(""));
  }
  // packages that failed without a failing test: build errors, panics, timeouts
  const otherFailures = [...failedPackages].filter((p) => !packagesWithFailedTests.has(p));
  if (failedTests.length || otherFailures.length) {
    out("\nFailed:\n");
    for (const t of failedTests) out("  " + t + "\n");
    for (const p of otherFailures) out("  " + p + " (package failed: build error, panic or timeout)\n");
  }
  const failed = counts.fail + otherFailures.length;
  out(`go test: ${counts.pass} passed, ${failed} failed, ${counts.skip} skipped\n`);
  if (countsFile) fs.writeFileSync(countsFile, `${counts.pass} ${failed} ${counts.skip}\n`);
});
