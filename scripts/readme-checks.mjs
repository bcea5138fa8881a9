// Regenerate README.md's check tables from the checks' metadata, and its usage block from the option table
// (run `npm run readme:checks`, which builds first).
import { readFile, writeFile } from 'node:fs/promises';
import { replaceCheckTables } from '../dist/findings/checks.js';
import { replaceUsage } from '../dist/scenario/options.js';

const file = new URL('../README.md', import.meta.url);
const before = await readFile(file, 'utf8');
const after = replaceUsage(replaceCheckTables(before));
if (after !== before) await writeFile(file, after);
console.log(after === before ? 'README.md check tables and usage are up to date' : 'README.md check tables and usage regenerated');
