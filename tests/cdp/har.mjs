// Validates a HAR file with the har-validator package (HAR 1.2 JSON schema): prints
// {"valid": true} or {"valid": false, "errors": [...]}. Used by tests/inspector.rs.
import { readFileSync } from 'node:fs';
import validator from 'har-validator';

const har = JSON.parse(readFileSync(process.argv[2], 'utf8'));
try {
  await validator.har(har);
  console.log(JSON.stringify({ valid: true, entries: har.log.entries.length }));
} catch (err) {
  console.log(JSON.stringify({ valid: false, errors: err.errors ?? [String(err)] }));
}
