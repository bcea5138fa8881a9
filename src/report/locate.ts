import path from 'node:path';
import type { SchemaFile } from '../schema-files.js';

export interface SourceLocation {
  /** Path relative to the working directory, with forward slashes. */
  file: string;
  line: number;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `schema.name` (quoted or not); for the public schema also the bare name. */
function nameOf(qualified: string): string {
  const dot = qualified.indexOf('.');
  const part = (text: string) => `(?:"${escapeRegExp(text.replace(/"/g, '""'))}"|${escapeRegExp(text)}(?![A-Za-z0-9_$]))`;
  const bare = `(?<![.A-Za-z0-9_"])${part(dot < 0 ? qualified : qualified.slice(dot + 1))}`;
  if (dot < 0) return bare;
  const schema = qualified.slice(0, dot);
  const full = `${part(schema)}\\s*\\.\\s*${part(qualified.slice(dot + 1))}`;
  return schema === 'public' ? `(?:${full}|${bare})` : full;
}

/** Where a finding's object is created in the schema files: a relation, a function, a role. */
function patternFor(object: string): RegExp {
  const fn = /^([^()]+)\(/.exec(object);
  if (fn) {
    return new RegExp(`create\\s+(?:or\\s+replace\\s+)?(?:function|procedure)\\s+(?:[A-Za-z0-9_"]+\\s*\\.\\s*)?${nameOf(fn[1]!.split('.').pop()!)}\\s*\\(`, 'i');
  }
  const relation = `create\\s+(?:(?:unlogged|temp|temporary)\\s+)?(?:table|view|materialized\\s+view|foreign\\s+table|(?:or\\s+replace\\s+)?(?:recursive\\s+)?view)\\s+(?:if\\s+not\\s+exists\\s+)?${nameOf(object)}`;
  const role = `create\\s+(?:role|user)\\s+${nameOf(object)}`;
  return new RegExp(object.includes('.') ? relation : `${relation}|${role}`, 'i');
}

/**
 * Map each object a finding names to the schema file and line that create it, so CI formats can point at
 * a line (GitHub code scanning needs a file location). Objects created elsewhere point at line 1 of the
 * first schema file; with no schema files (a url target) there is nothing to point at.
 */
export function locateObjects(files: SchemaFile[], objects: string[], cwd = process.cwd()): Record<string, SourceLocation> {
  const locations: Record<string, SourceLocation> = {};
  if (!files.length) return locations;
  const relative = (file: string) => (path.relative(cwd, file) || file).split(path.sep).join('/');
  for (const object of new Set(objects)) {
    const pattern = patternFor(object);
    let found: SourceLocation | null = null;
    for (const { file, sql } of files) {
      const match = pattern.exec(sql);
      if (match) {
        found = { file: relative(file), line: sql.slice(0, match.index).split('\n').length };
        break;
      }
    }
    locations[object] = found ?? { file: relative(files[0]!.file), line: 1 };
  }
  return locations;
}
