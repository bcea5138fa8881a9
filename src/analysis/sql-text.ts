/**
 * SQL text the checks show or rewrite, handled with the parser and its lexer, never with regular expressions:
 * fixes are composed around the original text at positions the lexer reports, or rebuilt from parse-tree data.
 */
import type { CallSite } from './model.js';
import { nodeBody, nodeList, nodeStrings, nodeType, someNode, toExpr } from './expression.js';
import { parseExpression, parseStatements, ParseError, scanTokens, type ScanToken } from './parse.js';

/** Text on one line: runs of whitespace become one space, and `( ` becomes `(` (pg_get_expr / pg_get_viewdef layout). */
export function oneLine(text: string): string {
  let out = '';
  let space = false;
  for (const char of text) {
    const blank = char === ' ' || char === '\n' || char === '\t' || char === '\r' || char === '\f' || char === '\v';
    if (blank) {
      space = out.length > 0;
      continue;
    }
    if (space && !out.endsWith('(')) out += ' ';
    space = false;
    out += char;
  }
  return out;
}

/**
 * `sql` without the `;` (or `;;`...) that ends it, e.g. to PREPARE it or to append a `;` of one's own; what
 * precedes the terminator is kept as written. Read with the lexer: a `;` in a string, a quoted name or a
 * comment is text, and a statement followed by a comment is returned as it is. Text the lexer rejects is
 * returned as it is (the server reports the error where it runs).
 */
export function withoutTerminator(sql: string): string {
  let tokens: ScanToken[];
  try {
    tokens = scanTokens(sql);
  } catch (error) {
    if (error instanceof ParseError) return sql;
    throw error;
  }
  let first = tokens.length;
  while (first > 0 && tokens[first - 1]!.text === ';') first -= 1;
  return first === tokens.length ? sql : sql.slice(0, tokens[first]!.start);
}

/** Character offsets for byte offsets (the lexer and parser count bytes). */
function charOffsets(text: string): (byte: number) => number {
  if (Buffer.byteLength(text) === text.length) return (byte) => byte;
  const offsets: number[] = [];
  let bytes = 0;
  for (let index = 0; index < text.length; index += 1) {
    offsets[bytes] = index;
    bytes += Buffer.byteLength(text[index]!);
  }
  offsets[bytes] = text.length;
  return (byte) => offsets[byte] ?? text.length;
}

function tokensOf(text: string): { tokens: ScanToken[]; at: (byte: number) => number } {
  return { tokens: scanTokens(text), at: charOffsets(text) };
}

/** Replace spans of `text` ([start, end) character offsets, not overlapping), from the end so offsets stay valid. */
function replaceSpans(text: string, spans: { start: number; end: number; replacement: string }[]): string {
  let out = text;
  for (const span of [...spans].sort((a, b) => b.start - a.start)) out = `${out.slice(0, span.start)}${span.replacement}${out.slice(span.end)}`;
  return out;
}

/** Keep only calls not nested in another of the list. */
function outermost(sites: CallSite[]): CallSite[] {
  return sites.filter((site) => !sites.some((other) => other !== site && other.start <= site.start && other.end >= site.end));
}

/** Wrap the chosen calls in `(select ...)` so that they run once per statement (an initplan) instead of per row. */
export function wrapCallsInSubselect(text: string, sites: CallSite[]): string {
  return replaceSpans(
    text,
    outermost(sites).map((site) => ({ start: site.start, end: site.end, replacement: `(select ${text.slice(site.start, site.end)})` })),
  );
}

/**
 * Rewrite the current_setting calls of some settings to `nullif(current_setting(name, true), '')`: the `strict` ones
 * (no missing_ok) or the `unguarded` ones (missing_ok, not already inside nullif(…, '')).
 */
export function guardSettingCalls(text: string, sites: CallSite[], settings: readonly string[], which: 'strict' | 'unguarded'): string {
  const chosen = sites.filter(
    (site) => site.setting !== null && settings.includes(site.setting.name) && (which === 'strict' ? !site.setting.missingOk : site.setting.missingOk && !site.setting.nullif),
  );
  return replaceSpans(
    text,
    chosen.map((site) => ({ start: site.start, end: site.end, replacement: `nullif(current_setting('${site.setting!.name.split("'").join("''")}', true), '')` })),
  );
}

/** Column names a key definition mentions (plain key columns and columns inside key expressions). */
export function keyColumnsMentioned(definition: string, kind: 'index' | 'constraint'): Set<string> {
  const sql = kind === 'index' ? definition : `alter table rls_audit_key add ${definition}`;
  const found = new Set<string>();
  const visit = (value: unknown): void => {
    if (!value || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach(visit);
    const type = nodeType(value);
    if (type === 'ColumnRef') {
      const fields = nodeStrings(nodeBody(value).fields);
      if (fields.length) found.add(fields[fields.length - 1]!);
      return;
    }
    if (type === 'IndexElem' && typeof nodeBody(value).name === 'string') found.add(String(nodeBody(value).name));
    if (type === 'Constraint') for (const key of nodeStrings(nodeBody(value).keys)) found.add(key);
    Object.values(type ? nodeBody(value) : (value as object)).forEach(visit);
  };
  try {
    visit(parseStatements(sql).map((raw) => raw.stmt));
  } catch {
    // An unreadable definition mentions nothing we can vouch for.
  }
  return found;
}

/**
 * Insert `prefix` as the first element of a key list: after the `(` that opens the element list following
 * `USING method` (a unique index or an exclusion constraint), or the first `(` when there is no USING.
 */
export function prefixKeyList(definition: string, prefix: string): string {
  const { tokens, at } = tokensOf(definition);
  const using = tokens.findIndex((token) => token.text.toUpperCase() === 'USING');
  const open = tokens.findIndex((token, index) => index > using && token.text === '(');
  if (open < 0) return definition;
  const position = at(tokens[open]!.end);
  return `${definition.slice(0, position)}${prefix}, ${definition.slice(position)}`;
}

const FK_ACTIONS: Record<string, string> = { r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' };

/**
 * The clauses that follow `REFERENCES parent (columns)` in a foreign-key definition (pg_get_constraintdef), rebuilt
 * from its parse tree: MATCH, ON UPDATE, ON DELETE (with its column list), DEFERRABLE. `deleteSetColumns` replaces
 * the column list of ON DELETE SET NULL / SET DEFAULT when the definition has none.
 */
export function foreignKeyClauses(definition: string, deleteSetColumns: string[] | null): string {
  let constraint: Record<string, unknown> | null = null;
  try {
    const statement = parseStatements(`alter table rls_audit_key add ${definition}`)[0]?.stmt;
    const command = nodeList(nodeBody(statement).cmds)[0];
    const def = nodeBody(command).def;
    if (nodeType(def) === 'Constraint') constraint = nodeBody(def);
  } catch {
    return '';
  }
  if (!constraint) return '';
  const parts: string[] = [];
  if (constraint.fk_matchtype === 'f') parts.push('MATCH FULL');
  const update = FK_ACTIONS[String(constraint.fk_upd_action ?? '')];
  if (update) parts.push(`ON UPDATE ${update}`);
  const remove = FK_ACTIONS[String(constraint.fk_del_action ?? '')];
  if (remove) {
    const columns = nodeStrings(constraint.fk_del_set_cols);
    const list = columns.length ? columns : (remove.startsWith('SET') ? deleteSetColumns : null) ?? [];
    parts.push(`ON DELETE ${remove}${list.length ? ` (${list.map((column) => `"${column.split('"').join('""')}"`).join(', ')})` : ''}`);
  }
  if (constraint.deferrable) parts.push(constraint.initdeferred ? 'DEFERRABLE INITIALLY DEFERRED' : 'DEFERRABLE');
  return parts.join(' ');
}

/** The relations a piece of SQL (one or more statements) names in FROM, JOIN, INSERT INTO, UPDATE, DELETE FROM: `schema.name` or `name`. */
export function relationsNamed(sql: string): string[] {
  const found: string[] = [];
  const visit = (value: unknown): void => {
    if (!value || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach(visit);
    const type = nodeType(value);
    if (type === 'RangeVar') {
      const range = nodeBody(value);
      found.push([range.schemaname, range.relname].filter(Boolean).join('.'));
      return;
    }
    Object.values(type ? nodeBody(value) : (value as object)).forEach(visit);
  };
  try {
    visit(parseStatements(sql).map((raw) => raw.stmt));
  } catch {
    // SQL the parser rejects names nothing it can vouch for (user SQL is checked, with its error, before it runs).
  }
  return [...new Set(found)];
}

const UUID_GENERATORS = new Set(['gen_random_uuid', 'uuid_generate_v1', 'uuid_generate_v1mc', 'uuid_generate_v4', 'uuidv4', 'uuidv7', 'uuid_generate_v7']);

/** What a column default generates: values from a sequence (`nextval(...)`), random UUIDs, or neither (null). */
export function defaultGenerator(expression: string | null): 'sequence' | 'uuid' | null {
  if (!expression) return null;
  let root;
  try {
    root = toExpr(parseExpression(expression));
  } catch {
    return null;
  }
  if (someNode(root, (node) => node.kind === 'call' && node.name === 'nextval')) return 'sequence';
  if (someNode(root, (node) => node.kind === 'call' && UUID_GENERATORS.has(node.name.split('.').pop()!))) return 'uuid';
  return null;
}

/** The functions SQL (one or more statements) calls: names as written, lower-cased (`set_config`, `app.set_tenant`). */
export function functionsCalled(sql: string): string[] {
  const found = new Set<string>();
  const visit = (value: unknown): void => {
    if (!value || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach(visit);
    const type = nodeType(value);
    if (type === 'FuncCall') found.add(nodeStrings(nodeBody(value).funcname).filter((part) => part !== 'pg_catalog').join('.').toLowerCase());
    Object.values(type ? nodeBody(value) : (value as object)).forEach(visit);
  };
  try {
    visit(parseStatements(sql).map((raw) => raw.stmt));
  } catch {
    // As relationsNamed: unparsable SQL calls nothing we can vouch for.
  }
  return [...found];
}
