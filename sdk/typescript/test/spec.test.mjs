// Every method names its route in its doc comment (`METHOD /path`); each must exist in the
// committed openapi.json, so the client cannot drift from the contract unnoticed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const root = new URL("../../../", import.meta.url);
const spec = JSON.parse(readFileSync(new URL("openapi.json", root), "utf8"));
const source = readFileSync(new URL("../index.js", import.meta.url), "utf8");

test("every route the client names is in openapi.json", () => {
  const routes = [...source.matchAll(/\/\*\* `(GET|POST|PATCH|DELETE|PUT) (\/v1\/[^`]*)` \*\//g)];
  assert.ok(routes.length >= 30, `found ${routes.length}`);
  for (const [, method, path] of routes) {
    assert.ok(spec.paths[path]?.[method.toLowerCase()], `${method} ${path} is not in openapi.json`);
  }
});

test("every public method names its route", () => {
  const lines = source.split("\n");
  const unnamed = [];
  lines.forEach((line, i) => {
    const m = line.match(/^  ([a-z]\w*)\(.*\) \{$/);
    if (!m || ["constructor", "request"].includes(m[1])) return;
    if (!/^  \/\*\* `(GET|POST|PATCH|DELETE|PUT) \/v1\//.test(lines[i - 1])) unnamed.push(m[1]);
  });
  assert.deepEqual(unnamed, []);
});
