import { scanTokens } from '../analysis/parse.js';
import { commentText, ident } from '../target/sql.js';

/**
 * A fix as data: the statements to run, in order, and the alternatives a user may run instead. The SQL a
 * report shows (a finding's `fix`) is rendered from it here and nowhere else; fix.sql and the locator read
 * the steps and the alternatives from the data, never from comments in the text.
 */
export interface Fix {
  steps: FixStep[];
  /** What may be done instead of `steps` (each rendered after a `-- or ...` line); never part of fix.sql. */
  alternatives?: FixAlternative[];
}

export interface FixAlternative {
  /** Words after `-- or` that introduce the alternative (`, if the app does not need it:`), as comment text. */
  lead: string;
  fix: Fix;
  /** Its first statement is written on the `-- or` line itself (`-- or stop direct access: revoke ...;`). */
  inline?: boolean;
  /** The `-- or<lead>` is written at the end of the line before it (`revoke a from b;  -- or from ...`). */
  trailing?: boolean;
}

/**
 * The kinds of change a fix statement makes. `app-statement` is not a change to the schema but the statement
 * the application should run instead of its own (it is shown, for the application's code). `sql` is never
 * built by a check: it is the text of a report written before fixes were typed (see sqlFix).
 */
export type FixStatementKind =
  | 'enable-rls'
  | 'force-rls'
  | 'create-policy'
  | 'alter-policy'
  | 'drop-policy'
  | 'revoke'
  | 'grant'
  | 'alter-default-privileges'
  | 'alter-table'
  | 'alter-view'
  | 'create-view'
  | 'alter-role'
  | 'alter-function'
  | 'create-index'
  | 'drop-index'
  | 'create-sequence'
  | 'set-sequence'
  | 'app-statement'
  | 'sql';

export interface FixStatement {
  kind: FixStatementKind;
  /** The statement as it is run, with its terminator. */
  sql: string;
  /**
   * The object the statement changes: a table (`"public"."notes"`), a view (the one created, for create-view),
   * a function signature, a role, an index, a sequence, the schema of default privileges (absent for all schemas).
   */
  target?: string;
  /** For policy statements: the policy and its table (`public.notes`), unquoted. */
  policy?: { name: string; table: string };
  /** A remark written after the statement on its line (`-- ...`). */
  note?: string;
}

/** A line of advice between statements, rendered as `-- text`. */
export interface FixComment {
  kind: 'comment';
  text: string;
}

export type FixStep = FixStatement | FixComment;

// ---------------------------------------------------------------------------------------------------------
// Rendering: the only place a fix becomes text.

function stepLine(step: FixStep): string {
  if (step.kind === 'comment') return `-- ${step.text}`;
  return step.note === undefined ? step.sql : `${step.sql}  -- ${step.note}`;
}

function fixLines(fix: Fix): string[] {
  const lines = fix.steps.map(stepLine);
  for (const alternative of fix.alternatives ?? []) {
    const [first, ...rest] = alternative.fix.steps;
    if (alternative.trailing && lines.length) {
      lines[lines.length - 1] += `  -- or${alternative.lead}`;
      lines.push(...fixLines(alternative.fix));
    } else if (alternative.inline && first) lines.push(`-- or${alternative.lead} ${commentText(stepLine(first))}`, ...fixLines({ ...alternative.fix, steps: rest }));
    else lines.push(`-- or${alternative.lead}`, ...fixLines(alternative.fix));
  }
  return lines;
}

/** The text of a fix, as a finding's `fix` and every renderer show it. */
export function renderFix(fix: Fix): string {
  return fixLines(fix).join('\n');
}

/** The statements to run (no alternatives), as SQL text with the comments between them. */
export function renderPrimary(fix: Fix): string {
  return fix.steps.map(stepLine).join('\n');
}

/**
 * The statements to run of a finding's fix, without its alternatives, as SQL text. A finding without
 * `fixSteps` (a report written before findings carried them, or one made by hand) has only the text, whose
 * alternatives start at the first `-- or` comment: read with the parser (`await loadParser()` first).
 */
export function primaryFixText(finding: { fix: string; fixSteps?: Fix }): string {
  if (finding.fixSteps) return renderPrimary(finding.fixSteps);
  const alternative = scanTokens(finding.fix).find((token) => token.tokenName === 'SQL_COMMENT' && token.text.slice(2).trimStart().toLowerCase().startsWith('or '));
  return alternative ? finding.fix.slice(0, alternative.start) : finding.fix;
}

/** The statements a fix runs before its alternatives. */
export function primaryStatements(fix: Fix): FixStatement[] {
  return fix.steps.filter((step): step is FixStatement => step.kind !== 'comment');
}

// ---------------------------------------------------------------------------------------------------------
// Building fixes.

export function fix(steps: FixStep[], alternatives: FixAlternative[] = []): Fix {
  return alternatives.length ? { steps, alternatives } : { steps };
}

/**
 * The fix of a finding read from a report written before findings carried `fixSteps`: its text as one
 * untyped `sql` step (report/locate.ts reads the policies it changes). No check builds one.
 */
export function sqlFix(text: string): Fix {
  return { steps: [{ kind: 'sql', sql: text }] };
}

/**
 * `a` followed by `b` in the text. When `a` has alternatives, `b` follows the last of them (it is read as part
 * of that alternative, as the rendered text reads), else it extends `a`'s own steps.
 */
export function appendFix(a: Fix, b: Fix): Fix {
  const alternatives = a.alternatives ?? [];
  const last = alternatives[alternatives.length - 1];
  if (!last) return fix([...a.steps, ...b.steps], b.alternatives ?? []);
  return fix(a.steps, [...alternatives.slice(0, -1), { ...last, fix: appendFix(last.fix, b) }]);
}

/** An alternative introduced by `-- or<lead>` on its own line. */
export function or(lead: string, alternative: Fix | FixStep[]): FixAlternative {
  return { lead, fix: Array.isArray(alternative) ? { steps: alternative } : alternative };
}

/** An alternative whose `-- or<lead>` ends the line of the last statement before it. */
export function orTrailing(lead: string, alternative: Fix | FixStep[]): FixAlternative {
  return { ...or(lead, alternative), trailing: true };
}

/** A one-statement alternative on the `-- or<lead> statement` line. */
export function orInline(lead: string, step: FixStatement): FixAlternative {
  return { lead, fix: { steps: [step] }, inline: true };
}

export function comment(text: string): FixComment {
  return { kind: 'comment', text };
}

function withNote<T extends FixStatement>(step: T, note: string | undefined): T {
  return note === undefined ? step : { ...step, note };
}

/** `alter table T enable row level security;` (table as an identifier). */
export function enableRls(table: string): FixStatement {
  return { kind: 'enable-rls', sql: `alter table ${table} enable row level security;`, target: table };
}

export function forceRls(table: string): FixStatement {
  return { kind: 'force-rls', sql: `alter table ${table} force row level security;`, target: table };
}

/** A policy statement whose SQL the caller wrote (CREATE/ALTER/DROP POLICY), typed with the policy it changes. */
export function policyStatement(kind: 'create-policy' | 'alter-policy' | 'drop-policy', policy: { name: string; table: string }, text: string, target?: string): FixStatement {
  return { kind, sql: text, policy, ...(target === undefined ? {} : { target }) };
}

/** `drop policy "name" on <table>;`: the policy (name and table unquoted) and its table as an identifier. */
export function dropPolicy(policy: { name: string; table: string }, table: string): FixStatement {
  return policyStatement('drop-policy', policy, `drop policy ${ident(policy.name)} on ${table};`, table);
}

/** `revoke <privileges> on <object> from <role>;`, or `revoke <role> from <member>;` when `on` is null. */
export function revoke(privileges: string, on: string | null, from: string, note?: string): FixStatement {
  return withNote({ kind: 'revoke', sql: on === null ? `revoke ${privileges} from ${from};` : `revoke ${privileges} on ${on} from ${from};`, target: on ?? privileges }, note);
}

export function grant(privileges: string, on: string, to: string): FixStatement {
  return { kind: 'grant', sql: `grant ${privileges} on ${on} to ${to};`, target: on };
}

/**
 * `alter default privileges [in schema <schema>] <change>;`: what objects created later get (`revoke execute on
 * functions from public`); run as the role that creates them. `schema` as an identifier, null for every schema.
 */
export function alterDefaultPrivileges(schema: string | null, change: string): FixStatement {
  return { kind: 'alter-default-privileges', sql: `alter default privileges${schema === null ? '' : ` in schema ${schema}`} ${change};`, ...(schema === null ? {} : { target: schema }) };
}

/** `alter table <table> <change>;` */
export function alterTable(table: string, change: string, note?: string): FixStatement {
  return withNote({ kind: 'alter-table', sql: `alter table ${table} ${change};`, target: table }, note);
}

/** `alter view <view> <change>;` (view as an identifier): `set (security_invoker = true)`, `owner to ...`. */
export function alterView(view: string, change: string): FixStatement {
  return { kind: 'alter-view', sql: `alter view ${view} ${change};`, target: view };
}

/** `create view <view> <rest>;`: a view the fix adds (as an identifier), `rest` from its options to its query. */
export function createView(view: string, rest: string): FixStatement {
  return { kind: 'create-view', sql: `create view ${view} ${rest};`, target: view };
}

/** `alter role <role> <options>;` (role as an identifier). */
export function alterRole(role: string, options: string): FixStatement {
  return { kind: 'alter-role', sql: `alter role ${role} ${options};`, target: role };
}

/** `alter function <signature> <change>;`: the signature as SQL (`public.f(integer)`). */
export function alterFunction(signature: string, change: string): FixStatement {
  return { kind: 'alter-function', sql: `alter function ${signature} ${change};`, target: signature };
}

/** `alter function <signature> set search_path = <path>;` */
export function setSearchPath(signature: string, path: string): FixStatement {
  return alterFunction(signature, `set search_path = ${path}`);
}

/** A CREATE INDEX statement the caller wrote, typed with its table. */
export function createIndex(table: string, text: string): FixStatement {
  return { kind: 'create-index', sql: text, target: table };
}

/** `drop index <index>;` (the index qualified, as an identifier). */
export function dropIndex(index: string): FixStatement {
  return { kind: 'drop-index', sql: `drop index ${index};`, target: index };
}

/** `create sequence <sequence> owned by <column>;`: both as identifiers (`"public"."notes"."id"` for the column). */
export function createSequence(sequence: string, ownedBy: string): FixStatement {
  return { kind: 'create-sequence', sql: `create sequence ${sequence} owned by ${ownedBy};`, target: sequence };
}

/** A statement the caller wrote that sets a sequence's next value (`select setval(...)`), typed with the sequence. */
export function setSequence(sequence: string, text: string): FixStatement {
  return { kind: 'set-sequence', sql: text, target: sequence };
}

/**
 * A statement for the application to run in place of its own (`select set_config(..., true)`): advice on the
 * application's code, shown as the statement it should send, not a change to the database.
 */
export function appStatement(text: string): FixStatement {
  return { kind: 'app-statement', sql: text };
}

/** `"name" on "schema"."table"` as the policy label the locator matches: `name on schema.table`. */
export function policyOf(name: string, schema: string, table: string): { name: string; table: string } {
  return { name, table: `${schema}.${table}` };
}
