// The breaking-change guard: compares two OpenAPI documents with api-smart-diff and prints one
// JSON line — the breaking changes not in the accepted list, how many were accepted, and how
// many changes were not breaking. Usage: node api-diff.mjs BEFORE.json AFTER.json [ACCEPTED.json]
//
// On top of api-smart-diff's rules (which let an *optional* response field go), any property
// removed from any schema is breaking: a client may read it (docs/VERSIONING.md).
import fs from 'node:fs';
import { apiCompare } from 'api-smart-diff';

const [beforePath, afterPath, acceptedPath] = process.argv.slice(2);
const read = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const before = read(beforePath);
const after = read(afterPath);
const accepted = acceptedPath && fs.existsSync(acceptedPath) ? read(acceptedPath).accepted || [] : [];

const { diffs } = apiCompare(before, after);
// A new value of an enum in a response is additive by the policy (docs/VERSIONING.md: clients
// must tolerate unknown values); api-smart-diff counts it as breaking.
const responseEnumAdded = (d) =>
  d.action === 'add' && d.path.includes('responses') && d.path[d.path.length - 2] === 'enum';
const breaking = diffs
  .filter((d) => d.type === 'breaking' && !responseEnumAdded(d))
  .map((d) => ({ path: d.path.join('/'), description: d.description || d.action }));

// Properties removed from a schema, wherever the schema is (components or inline).
function removedProperties(a, b, path) {
  const out = [];
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object') return out;
  if (a.properties && typeof a.properties === 'object') {
    for (const name of Object.keys(a.properties)) {
      if (!b.properties || !(name in b.properties)) {
        out.push({ path: `${path}/properties/${name}`, description: `[Removed] property \`${name}\`` });
      }
    }
  }
  for (const key of Object.keys(a)) {
    if (key in b) out.push(...removedProperties(a[key], b[key], `${path}/${key}`));
  }
  return out;
}
const seen = new Set(breaking.map((b) => b.path));
for (const r of removedProperties(before, after, '')) {
  const path = r.path.replace(/^\//, '');
  if (!seen.has(path)) {
    seen.add(path);
    breaking.push({ path, description: r.description });
  }
}

const isAccepted = (b) => accepted.some((a) => a.path === b.path);
const unaccepted = breaking.filter((b) => !isAccepted(b));
console.log(JSON.stringify({
  breaking: unaccepted,
  accepted: breaking.length - unaccepted.length,
  non_breaking: diffs.filter((d) => d.type !== 'breaking').length,
}));
