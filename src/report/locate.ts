import { existsSync } from 'node:fs';
import { primaryFixText, primaryStatements, sqlFix } from '../findings/fix.js';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseStatements, statementSpans, type RawStmt, type StatementSpan } from '../analysis/parse.js';
import { objectLabel, objectSubject, type Finding } from '../findings/finding.js';
import type { SchemaFile } from '../target/schema-files.js';

/**
 * Where the schema files create the objects findings are about, read with PostgreSQL's parser: the
 * statement that creates a table, view, function, role, sequence, policy or named constraint. CI formats
 * point at it (GitHub code scanning needs a file location on every result).
 */

export interface SourceLocation {
  /** Path relative to the report's `sourceRoot` (see sourceRootDirectory), with forward slashes. */
  file: string;
  /** 1-based line of the statement's first character. */
  line: number;
  /** 1-based column of the statement's first character. */
  column?: number;
  /** 1-based line and column just past the statement's last character. */
  endLine?: number;
  endColumn?: number;
}

/**
 * The directory location paths are relative to: the root of the git repository that holds the working
 * directory (code scanning reads paths from the repository's root, also when the audit runs in a
 * subfolder of it), else the working directory itself.
 */
export function sourceRootDirectory(cwd: string = process.cwd()): string {
  const start = path.resolve(cwd);
  for (let directory = start; ; directory = path.dirname(directory)) {
    // `.git` is a folder in a clone, a file in a worktree or submodule.
    if (existsSync(path.join(directory, '.git'))) return directory;
    if (path.dirname(directory) === directory) return start;
  }
}

/** A directory as a file:// URI ending in '/' (SARIF's `%SRCROOT%`); by default the source root. */
export function sourceRootUri(directory: string = sourceRootDirectory()): string {
  const uri = pathToFileURL(path.resolve(directory)).href;
  return uri.endsWith('/') ? uri : `${uri}/`;
}

/**
 * The key under which `locations` holds the place of one finding when it is not where its object is
 * created: a finding whose fix alters or drops a policy points at that policy's CREATE POLICY.
 */
export function findingLocationKey(finding: Pick<Finding, 'check' | 'object'>): string {
  return `${objectLabel(finding.object)} [${finding.check}]`;
}

/** Where a finding is located: its own place, else its object's (a policy or constraint), else its table's. */
export function findingLocation(locations: Record<string, SourceLocation>, finding: Pick<Finding, 'check' | 'object'>): SourceLocation | undefined {
  return locations[findingLocationKey(finding)] ?? locations[objectLabel(finding.object)] ?? locations[objectSubject(finding.object)];
}

// ---------------------------------------------------------------------------------------------------------
// Parse-tree access. The tree is JSON from libpg-query; these read the few node shapes the locator needs.

type Tree = Record<string, unknown>;

const asTree = (value: unknown): Tree | undefined => (value && typeof value === 'object' && !Array.isArray(value) ? (value as Tree) : undefined);
const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** The node inside a wrapper such as `{ CreateStmt: {...} }`, when it is of that type. */
function node(value: unknown, type: string): Tree | undefined {
  return asTree(asTree(value)?.[type]);
}

/** `String` nodes of a name list, e.g. a function's `funcname`. */
function names(list: unknown): string[] {
  return asList(list).map((item) => text(node(item, 'String')?.sval) ?? '');
}

interface RangeVar {
  schema: string;
  name: string;
}

function rangeVar(value: unknown, defaultSchema: string): RangeVar | undefined {
  const range = asTree(value);
  const name = text(range?.relname);
  return name === undefined ? undefined : { schema: text(range?.schemaname) ?? defaultSchema, name };
}

const qualified = (relation: RangeVar) => `${relation.schema}.${relation.name}`;

/**
 * A type's identity for matching a function signature: its last name part (PostgreSQL's parser already
 * maps `integer` to `int4`, `character varying` to `varchar`) and its array dimensions; typmods do not
 * count, as in a function's identity. Null for `%TYPE` references, which only the server resolves.
 */
function typeKey(value: unknown): string | null {
  const type = asTree(value);
  if (!type || type.pct_type) return null;
  const parts = names(type.names);
  return `${parts[parts.length - 1] ?? ''}${'[]'.repeat(asList(type.arrayBounds).length)}`;
}

/** Parameter modes that are part of a function's identity (its input arguments). */
const INPUT_MODES = new Set([undefined, 'FUNC_PARAM_IN', 'FUNC_PARAM_INOUT', 'FUNC_PARAM_VARIADIC', 'FUNC_PARAM_DEFAULT']);

interface FunctionCreated {
  schema: string;
  name: string;
  /** Input argument types; null where the server resolves the type (`%TYPE`). */
  args: (string | null)[];
  location: SourceLocation;
}

interface Created {
  /** Relations, roles, policies (`name on schema.table`), named constraints (same form), sequences. */
  objects: Map<string, SourceLocation>;
  functions: FunctionCreated[];
}

/** 1-based line and column of each character offset of a text. */
function lineColumns(sql: string): (offset: number) => { line: number; column: number } {
  const lineStarts = [0];
  for (let index = 0; index < sql.length; index++) if (sql[index] === '\n') lineStarts.push(index + 1);
  return (offset) => {
    let low = 0;
    let high = lineStarts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (lineStarts[middle]! <= offset) low = middle;
      else high = middle - 1;
    }
    return { line: low + 1, column: offset - lineStarts[low]! + 1 };
  };
}

/** The schema unqualified names are created in after `SET search_path = ...` (its first entry other than $user). */
function creationSchema(set: Tree, current: string): string {
  if (text(set.name)?.toLowerCase() !== 'search_path') return current;
  if (set.kind === 'VAR_SET_DEFAULT' || set.kind === 'VAR_RESET' || set.kind === 'VAR_RESET_ALL') return 'public';
  if (set.kind !== 'VAR_SET_VALUE') return current;
  for (const arg of asList(set.args)) {
    const constant = node(arg, 'A_Const');
    const value = text(asTree(constant?.sval)?.sval) ?? text(names(node(arg, 'ColumnRef')?.fields)[0]);
    if (value && value !== '$user') return value;
  }
  return current;
}

const SERIAL_TYPES = new Set(['smallserial', 'serial', 'bigserial', 'serial2', 'serial4', 'serial8']);

/**
 * The sequence a serial or identity column creates, named as PostgreSQL names it (`table_column_seq`)
 * when that name needs no truncation (PostgreSQL shortens names over 63 bytes and avoids taken ones).
 */
function ownedSequence(relation: RangeVar, column: Tree): string | undefined {
  const type = names(asTree(column.typeName)?.names);
  const serial = type.length === 1 && SERIAL_TYPES.has(type[0]!);
  const identity = asList(column.constraints).some((entry) => node(entry, 'Constraint')?.contype === 'CONSTR_IDENTITY');
  const name = `${relation.name}_${text(column.colname) ?? ''}_seq`;
  return (serial || identity) && Buffer.byteLength(name) <= 63 ? `${relation.schema}.${name}` : undefined;
}

/** Record what one statement creates; `schema` is where unqualified names go. Returns the schema after it. */
function recordStatement(statement: Tree, at: SourceLocation, schema: string, created: Created): string {
  const remember = (key: string) => {
    if (!created.objects.has(key)) created.objects.set(key, at);
  };
  const [type] = Object.keys(statement);
  const body = asTree(statement[type ?? '']) ?? {};
  switch (type) {
    case 'CreateStmt':
    case 'CreateForeignTableStmt': {
      const table = body.base ? asTree(body.base) ?? {} : body;
      const relation = rangeVar(table.relation, schema);
      if (!relation) break;
      remember(qualified(relation));
      for (const element of asList(table.tableElts)) {
        const column = node(element, 'ColumnDef');
        const sequence = column && ownedSequence(relation, column);
        if (sequence) remember(sequence);
        const constraints = column ? asList(column.constraints) : [element];
        for (const entry of constraints) {
          const constraint = node(entry, 'Constraint');
          const name = text(constraint?.conname);
          if (name) remember(`${name} on ${qualified(relation)}`);
        }
      }
      for (const entry of asList(table.constraints)) {
        const name = text(node(entry, 'Constraint')?.conname);
        if (name) remember(`${name} on ${qualified(relation)}`);
      }
      break;
    }
    case 'CreateTableAsStmt': {
      const relation = rangeVar(asTree(body.into)?.rel, schema);
      if (relation) remember(qualified(relation));
      break;
    }
    case 'ViewStmt': {
      const relation = rangeVar(body.view, schema);
      if (relation) remember(qualified(relation));
      break;
    }
    case 'CreateSeqStmt': {
      const relation = rangeVar(body.sequence, schema);
      if (relation) remember(qualified(relation));
      break;
    }
    case 'CreatePolicyStmt': {
      const relation = rangeVar(body.table, schema);
      const name = text(body.policy_name);
      if (relation && name) remember(`${name} on ${qualified(relation)}`);
      break;
    }
    case 'AlterTableStmt': {
      const relation = rangeVar(body.relation, schema);
      if (!relation) break;
      for (const command of asList(body.cmds)) {
        const alter = node(command, 'AlterTableCmd');
        const name = alter?.subtype === 'AT_AddConstraint' ? text(node(alter.def, 'Constraint')?.conname) : undefined;
        if (name) remember(`${name} on ${qualified(relation)}`);
      }
      break;
    }
    case 'CreateRoleStmt': {
      const role = text(body.role);
      if (role) remember(role);
      break;
    }
    case 'CreateFunctionStmt': {
      const parts = names(body.funcname);
      const name = parts[parts.length - 1];
      if (!name) break;
      const args = asList(body.parameters)
        .map((entry) => node(entry, 'FunctionParameter'))
        .filter((parameter) => parameter && INPUT_MODES.has(text(parameter.mode)))
        .map((parameter) => typeKey(parameter!.argType));
      created.functions.push({ schema: parts.length > 1 ? parts[parts.length - 2]! : schema, name, args, location: at });
      break;
    }
    case 'CreateSchemaStmt': {
      const inner = text(body.schemaname) ?? schema;
      for (const element of asList(body.schemaElts)) {
        const child = asTree(element);
        if (child) recordStatement(child, at, inner, created);
      }
      break;
    }
    case 'VariableSetStmt':
      return creationSchema(body, schema);
  }
  return schema;
}

/** Every object the schema files create, in file order; the first statement that creates a name wins. */
function createdObjects(files: SchemaFile[], relative: (file: string) => string): Created {
  const created: Created = { objects: new Map(), functions: [] };
  for (const { file, sql } of files) {
    let statements: StatementSpan[];
    try {
      statements = statementSpans(sql);
    } catch {
      // The server ran the file; if this parser cannot read it, its objects fall back to the first line.
      continue;
    }
    const position = lineColumns(sql);
    let schema = 'public';
    for (const { raw, start, end } of statements) {
      const statement = asTree(raw.stmt);
      if (!statement) continue;
      const from = position(start);
      const to = position(Math.max(start, end));
      const at: SourceLocation = { file: relative(file), line: from.line, column: from.column, endLine: to.line, endColumn: to.column };
      schema = recordStatement(statement, at, schema, created);
    }
  }
  return created;
}

/** `public.search(text, integer)` as the parser reads it: name parts and argument type keys. */
function parseSignature(signature: string): { schema: string | null; name: string; args: (string | null)[] } | null {
  let statements: RawStmt[];
  try {
    statements = parseStatements(`drop function ${signature}`);
  } catch {
    return null;
  }
  const drop = node(statements[0]?.stmt, 'DropStmt');
  const target = node(asList(drop?.objects)[0], 'ObjectWithArgs');
  if (statements.length !== 1 || !target) return null;
  const parts = names(target.objname);
  const name = parts[parts.length - 1];
  if (!name) return null;
  return { schema: parts.length > 1 ? parts[parts.length - 2]! : null, name, args: asList(target.objargs).map((arg) => typeKey(asTree(arg)?.TypeName ?? arg)) };
}

/** The CREATE FUNCTION of a signature: same schema, name and argument types; else the only function of that name. */
function locateFunction(created: Created, signature: string): SourceLocation | undefined {
  const wanted = parseSignature(signature);
  if (!wanted) return undefined;
  const named = created.functions.filter((fn) => fn.name === wanted.name && (wanted.schema === null || fn.schema === wanted.schema));
  const exact = named.find((fn) => fn.args.length === wanted.args.length && fn.args.every((arg, index) => arg === null || wanted.args[index] === null || arg === wanted.args[index]));
  return (exact ?? (named.length === 1 ? named[0] : undefined))?.location;
}

/**
 * A relation named without its schema (regclass prints a sequence or table that is on the search path
 * that way): the one relation of that name the files create, in whatever schema.
 */
function unqualified(created: Created, kind: string, name: string): SourceLocation | undefined {
  if (name.includes('.') || !['table', 'view', 'sequence'].includes(kind)) return undefined;
  const matches = [...created.objects.keys()].filter((key) => !key.includes(' on ') && key.endsWith(`.${name}`) && key.indexOf('.') === key.length - name.length - 1);
  return matches.length === 1 ? created.objects.get(matches[0]!) : undefined;
}

/**
 * The policies a finding's fix changes or drops (`alter policy`, `drop policy`; not its alternatives), as
 * `name on schema.table` labels: from the typed steps, and from the text of untyped ones.
 */
function policiesFixed(finding: Pick<Finding, 'fix' | 'fixSteps'>): string[] {
  let fix = finding.fixSteps;
  if (!fix) {
    // A report written before findings carried `fixSteps`: its text, up to the alternatives, as one untyped step.
    try {
      fix = sqlFix(primaryFixText(finding));
    } catch {
      return [];
    }
  }
  return primaryStatements(fix).flatMap((step) => {
    if (step.kind === 'sql') return policiesIn(step.sql);
    return (step.kind === 'alter-policy' || step.kind === 'drop-policy') && step.policy ? [`${step.policy.name} on ${step.policy.table}`] : [];
  });
}

/** The policies SQL text changes or drops (`alter policy`, `drop policy`), as `name on schema.table` labels. */
function policiesIn(sql: string): string[] {
  let statements: RawStmt[];
  try {
    statements = parseStatements(sql);
  } catch {
    return [];
  }
  const labels: string[] = [];
  for (const raw of statements) {
    const alter = node(raw.stmt, 'AlterPolicyStmt');
    const relation = alter && rangeVar(alter.table, 'public');
    if (alter && relation && text(alter.policy_name)) labels.push(`${text(alter.policy_name)} on ${qualified(relation)}`);
    const drop = node(raw.stmt, 'DropStmt');
    if (drop?.removeType === 'OBJECT_POLICY') {
      for (const object of asList(drop.objects)) {
        const parts = names(node(object, 'List')?.items);
        const policy = parts.pop();
        if (policy && parts.length) labels.push(`${policy} on ${parts.length === 1 ? `public.${parts[0]}` : parts.slice(-2).join('.')}`);
      }
    }
  }
  return labels;
}

/**
 * Map what the findings name to the schema statement that creates it, so CI formats can point at a line:
 * each finding's subject (its table, view, function, role, sequence; a policy's or constraint's table), a
 * policy or constraint by its label, and, under `findingLocationKey`, a finding whose fix changes a policy
 * at that policy's CREATE POLICY. Objects no schema statement creates point at line 1 of the first schema
 * file; with no schema files (a url target) there is nothing to point at. Paths are relative to `root`
 * (the report's `sourceRoot`). The parser must be loaded.
 */
export function locateObjects(files: SchemaFile[], findings: readonly Pick<Finding, 'check' | 'object' | 'fix'>[], root = sourceRootDirectory()): Record<string, SourceLocation> {
  const locations: Record<string, SourceLocation> = {};
  if (!files.length) return locations;
  const relative = (file: string) => (path.relative(root, path.resolve(file)) || file).split(path.sep).join('/');
  const created = createdObjects(files, relative);
  const fallback: SourceLocation = { file: relative(files[0]!.file), line: 1 };
  const find = (kind: string, name: string) => (kind === 'function' ? locateFunction(created, name) : created.objects.get(name) ?? unqualified(created, kind, name));
  for (const finding of findings) {
    const { object } = finding;
    const subject = objectSubject(object);
    locations[subject] ??= find(object.relation ? 'table' : object.kind, subject) ?? fallback;
    if (object.relation) {
      const own = created.objects.get(objectLabel(object));
      if (own) locations[objectLabel(object)] ??= own;
    }
    if (object.kind !== 'table' && object.kind !== 'view') continue;
    const policy = policiesFixed(finding).find((label) => label.endsWith(` on ${subject}`) && created.objects.has(label));
    if (policy) locations[findingLocationKey(finding)] ??= created.objects.get(policy)!;
  }
  return locations;
}
