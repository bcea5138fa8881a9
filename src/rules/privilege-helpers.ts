import { inheritedRoles, memberships } from '../catalog/roles.js';
import type { Catalog, Column, FunctionInfo, Grant, Policy, Relation, Role } from '../catalog/types.js';
import type { Finding } from '../findings.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import { ident, literal, qualifiedIdent } from '../sql.js';
import type { RuleReport } from './types.js';

/**
 * Shared lookups for the privilege, integrity and performance rules. Every index is built once per catalog
 * (or plan) and cached, so a rule never scans all relations for each relation, policy or function it looks at.
 */


interface CatalogIndex {
  relations: Map<string, Relation>;
  /** Bare name -> relations with that name, for resolving unqualified references in SQL text. */
  relationsByName: Map<string, Relation[]>;
  roles: Map<string, Role>;
  functionsByName: Map<string, FunctionInfo[]>;
  inherited: Map<string, Set<string>>;
  reachable: Map<string, Set<string>>;
}

const catalogIndexes = new WeakMap<Catalog, CatalogIndex>();

function catalogIndex(catalog: Catalog): CatalogIndex {
  let index = catalogIndexes.get(catalog);
  if (index) return index;
  const relationsByName = new Map<string, Relation[]>();
  for (const relation of catalog.relations) {
    const list = relationsByName.get(relation.name);
    if (list) list.push(relation);
    else relationsByName.set(relation.name, [relation]);
  }
  const functionsByName = new Map<string, FunctionInfo[]>();
  for (const fn of catalog.functions) {
    for (const key of [fn.name.toLowerCase(), `${fn.schema}.${fn.name}`.toLowerCase()]) {
      const list = functionsByName.get(key);
      if (list) list.push(fn);
      else functionsByName.set(key, [fn]);
    }
  }
  index = {
    relations: new Map(catalog.relations.map((relation) => [relation.qualified, relation])),
    relationsByName,
    roles: new Map(catalog.roles.map((role) => [role.name, role])),
    functionsByName,
    inherited: new Map(),
    reachable: new Map(),
  };
  catalogIndexes.set(catalog, index);
  return index;
}

const planIndexes = new WeakMap<TenancyPlan, Map<string, RelationPlan>>();

export function relationPlanOf(plan: TenancyPlan, relation: string): RelationPlan | undefined {
  let index = planIndexes.get(plan);
  if (!index) {
    index = new Map(plan.relations.map((entry) => [entry.relation, entry]));
    planIndexes.set(plan, index);
  }
  return index.get(relation);
}

export function relationNamed(catalog: Catalog, qualified: string): Relation | undefined {
  return catalogIndex(catalog).relations.get(qualified);
}

export function roleNamed(catalog: Catalog, name: string): Role | undefined {
  return catalogIndex(catalog).roles.get(name);
}

/** Functions with this (lower-case, optionally schema-qualified) name, every overload. */
export function functionsNamed(catalog: Catalog, name: string): FunctionInfo[] {
  return catalogIndex(catalog).functionsByName.get(name.toLowerCase()) ?? [];
}

/** Roles whose privileges the role uses without SET ROLE (itself and INHERIT memberships). Cached. */
export function inheritedBy(catalog: Catalog, role: string): Set<string> {
  const index = catalogIndex(catalog);
  let roles = index.inherited.get(role);
  if (!roles) {
    roles = inheritedRoles(catalog, role);
    index.inherited.set(role, roles);
  }
  return roles;
}

/** Roles the role is a member of, directly or not: their privileges are one SET ROLE away. Cached. */
export function reachableBy(catalog: Catalog, role: string): Set<string> {
  const index = catalogIndex(catalog);
  let roles = index.reachable.get(role);
  if (!roles) {
    roles = memberships(catalog, role);
    index.reachable.set(role, roles);
  }
  return roles;
}

/** True when a grant list (with the owner's implicit rights) lets the role, or a role it can become, use a privilege. */
export function roleHolds(catalog: Catalog, role: string, owner: string, grants: Grant[], privilege: string): boolean {
  const roles = reachableBy(catalog, role);
  if (roles.has(owner)) return true;
  return grants.some((grant) => grant.privilege === privilege && (grant.grantee === 'public' || roles.has(grant.grantee)));
}

export function canRead(catalog: Catalog, role: string, relation: Relation): boolean {
  return roleHolds(catalog, role, relation.owner, relation.grants, 'SELECT');
}

/** INSERT or UPDATE: what it takes to probe a unique key or to point a foreign key somewhere. */
export function canWrite(catalog: Catalog, role: string, relation: Relation): boolean {
  return ['INSERT', 'UPDATE'].some((privilege) => roleHolds(catalog, role, relation.owner, relation.grants, privilege));
}

export function canExecute(catalog: Catalog, role: string, fn: FunctionInfo): boolean {
  return roleHolds(catalog, role, fn.owner, fn.grants, 'EXECUTE');
}

/**
 * Why a role reads every row of a table with row-level security regardless of its policies, or null when the
 * policies apply to it: a superuser or BYPASSRLS role, or the table's owner (or a role inheriting the owner's
 * rights) when RLS is not forced.
 */
export function rlsBypassReason(catalog: Catalog, role: string, relation: Relation): string | null {
  const info = roleNamed(catalog, role);
  if (info?.superuser) return `${role} is a superuser`;
  if (info?.bypassRls) return `${role} has BYPASSRLS`;
  if (!relation.rlsForced && inheritedBy(catalog, role).has(relation.owner)) {
    return relation.owner === role
      ? `${role} owns ${relation.qualified}, which does not force row-level security`
      : `${role} inherits the rights of ${relation.owner}, owner of ${relation.qualified}, which does not force row-level security`;
  }
  return null;
}

export function isBaseTable(relation: Relation): boolean {
  return relation.kind === 'table' || relation.kind === 'partitioned-table';
}

/** Tenant-owned base tables (the tenant table, tables with a tenant column or an FK path, partitions and children). */
export function tenantTables(catalog: Catalog, plan: TenancyPlan): { relation: Relation; relationPlan: RelationPlan }[] {
  const tables: { relation: Relation; relationPlan: RelationPlan }[] = [];
  for (const relation of catalog.relations) {
    if (!isBaseTable(relation)) continue;
    const relationPlan = relationPlanOf(plan, relation.qualified);
    if (relationPlan && relationPlan.tenancy !== 'shared') tables.push({ relation, relationPlan });
  }
  return tables;
}

export function columnOf(relation: Relation, name: string): Column | undefined {
  return relation.columns.find((column) => column.name === name);
}

/** `schema` and `name` literals for a qualified name, for catalog queries in evidence. */
function splitQualified(qualified: string): { schema: string; name: string } {
  const dot = qualified.indexOf('.');
  return dot < 0 ? { schema: 'public', name: qualified } : { schema: qualified.slice(0, dot), name: qualified.slice(dot + 1) };
}

export function regclassLiteral(qualified: string): string {
  return `${literal(qualifiedIdent(qualified))}::regclass`;
}

export function policyEvidenceSql(policy: Policy): string {
  const { schema, name } = splitQualified(policy.relation);
  return `select policyname, permissive, roles, cmd, qual, with_check from pg_policies where schemaname = ${literal(schema)} and tablename = ${literal(name)} and policyname = ${literal(policy.name)};`;
}

export function describePolicy(policy: Policy): string {
  const parts = [`policy ${policy.name} on ${policy.relation} (${policy.permissive ? 'permissive' : 'restrictive'}, for ${policy.command.toLowerCase()}, to ${policy.roles.join(', ')})`];
  if (policy.using !== null) parts.push(`using ${policy.using}`);
  if (policy.withCheck !== null) parts.push(`with check ${policy.withCheck}`);
  return parts.join('\n');
}

/** `alter policy ... using (...) with check (...)` with each present expression rewritten. */
export function alterPolicySql(policy: Policy, rewrite: (expression: string) => string): string {
  const parts = [`alter policy ${ident(policy.name)} on ${qualifiedIdent(policy.relation)}`];
  if (policy.using !== null) parts.push(`  using (${rewrite(policy.using)})`);
  if (policy.withCheck !== null) parts.push(`  with check (${rewrite(policy.withCheck)})`);
  return `${parts.join('\n')};`;
}

// ---------------------------------------------------------------------------------------------------------
// SQL text analysis: pg_get_expr / pg_get_viewdef / function bodies. Small, local scanners; no SQL parser.

const IDENT_START = /[A-Za-z_\u0080-\uffff]/;
const IDENT_PART = /[A-Za-z0-9_$\u0080-\uffff]/;

/** Blank out comments and string literals (same length, so positions still line up). Dollar quotes too when asked. */
function maskLiterals(sql: string, options: { dollarQuotes?: boolean; keepStrings?: boolean } = {}): string {
  let out = '';
  let index = 0;
  while (index < sql.length) {
    const char = sql[index]!;
    const next = sql[index + 1];
    if (char === '-' && next === '-') {
      const end = sql.indexOf('\n', index);
      const stop = end < 0 ? sql.length : end;
      out += ' '.repeat(stop - index);
      index = stop;
      continue;
    }
    if (char === '/' && next === '*') {
      const end = sql.indexOf('*/', index + 2);
      const stop = end < 0 ? sql.length : end + 2;
      out += sql.slice(index, stop).replace(/[^\n]/g, ' ');
      index = stop;
      continue;
    }
    if (char === "'") {
      let stop = index + 1;
      while (stop < sql.length) {
        if (sql[stop] === "'" && sql[stop + 1] === "'") stop += 2;
        else if (sql[stop] === "'") break;
        else stop += 1;
      }
      stop = Math.min(stop + 1, sql.length);
      out += options.keepStrings ? sql.slice(index, stop) : `'${' '.repeat(Math.max(0, stop - index - 2))}'`.slice(0, stop - index);
      index = stop;
      continue;
    }
    if (char === '$' && options.dollarQuotes) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(index));
      if (tag && !(index > 0 && IDENT_PART.test(sql[index - 1]!))) {
        const end = sql.indexOf(tag[0], index + tag[0].length);
        const stop = end < 0 ? sql.length : end + tag[0].length;
        out += ' '.repeat(stop - index);
        index = stop;
        continue;
      }
    }
    out += char;
    index += 1;
  }
  return out;
}

export interface FunctionCall {
  /** Lower-cased name as written, schema-qualified when it was: `current_setting`, `public.current_tenant`. */
  name: string;
  /** Offset of the name in the expression. */
  start: number;
  /** Offset just past the call's closing parenthesis. */
  end: number;
  /** True when the call sits inside a `( SELECT ...)` sub-select: evaluated once as an initplan, not per row. */
  inSubselect: boolean;
}

function readIdentifier(text: string, at: number): { name: string; end: number } | null {
  if (text[at] === '"') {
    let stop = at + 1;
    let name = '';
    while (stop < text.length) {
      if (text[stop] === '"' && text[stop + 1] === '"') {
        name += '"';
        stop += 2;
      } else if (text[stop] === '"') break;
      else name += text[stop++];
    }
    return { name, end: stop + 1 };
  }
  if (!IDENT_START.test(text[at] ?? '')) return null;
  let stop = at + 1;
  while (stop < text.length && IDENT_PART.test(text[stop]!)) stop += 1;
  return { name: text.slice(at, stop).toLowerCase(), end: stop };
}

function closingParen(text: string, open: number): number {
  let depth = 0;
  for (let index = open; index < text.length; index += 1) {
    if (text[index] === '(') depth += 1;
    else if (text[index] === ')') {
      depth -= 1;
      if (depth === 0) return index;
    }
  }
  return text.length - 1;
}

/** Every `name(...)` call in an expression, with whether it sits inside a sub-select. */
export function functionCalls(expression: string): FunctionCall[] {
  const text = maskLiterals(expression);
  const calls: FunctionCall[] = [];
  // Stack of open parentheses: true when the group is a sub-select.
  const groups: boolean[] = [];
  let index = 0;
  while (index < text.length) {
    const char = text[index]!;
    if (char === '(') {
      groups.push(/^\(\s*select\b/i.test(text.slice(index, index + 12)));
      index += 1;
      continue;
    }
    if (char === ')') {
      groups.pop();
      index += 1;
      continue;
    }
    if (char === '"' || (IDENT_START.test(char) && !(index > 0 && IDENT_PART.test(text[index - 1]!)))) {
      const first = readIdentifier(text, index);
      if (!first) {
        index += 1;
        continue;
      }
      let name = first.name;
      let end = first.end;
      if (text[end] === '.') {
        const second = readIdentifier(text, end + 1);
        if (second) {
          name = `${name}.${second.name}`;
          end = second.end;
        }
      }
      let open = end;
      while (open < text.length && /\s/.test(text[open]!)) open += 1;
      if (text[open] === '(') {
        calls.push({ name, start: index, end: closingParen(text, open) + 1, inSubselect: groups.includes(true) });
      }
      index = end;
      continue;
    }
    index += 1;
  }
  return calls;
}

/** Rewrite an expression, wrapping the chosen calls in `(select ...)` so they run once per statement. */
export function wrapCallsInSubselect(expression: string, calls: FunctionCall[]): string {
  let out = expression;
  // Outermost calls only, from the end so earlier offsets stay valid.
  const outermost = calls.filter((call) => !calls.some((other) => other !== call && other.start <= call.start && other.end >= call.end));
  for (const call of [...outermost].sort((a, b) => b.start - a.start)) {
    out = `${out.slice(0, call.start)}(select ${out.slice(call.start, call.end)})${out.slice(call.end)}`;
  }
  return out;
}

export interface TableReference {
  relation: Relation;
  /** Offset of the reference in the (masked) text. */
  at: number;
}

/**
 * Relations named in SQL text (a view definition or a function body): identifiers, qualified or not, that are
 * not function calls or column references. A bare name resolves to the one relation with that name, preferring
 * the schemas given (search_path-like).
 */
export function referencedRelations(catalog: Catalog, sql: string, preferredSchemas: string[]): TableReference[] {
  const index = catalogIndex(catalog);
  const text = maskLiterals(sql, { dollarQuotes: true });
  const found: TableReference[] = [];
  let at = 0;
  while (at < text.length) {
    const char = text[at]!;
    const boundary = !(at > 0 && (IDENT_PART.test(text[at - 1]!) || text[at - 1] === '.'));
    if (!(boundary && (char === '"' || IDENT_START.test(char)))) {
      at += 1;
      continue;
    }
    const first = readIdentifier(text, at);
    if (!first) {
      at += 1;
      continue;
    }
    let end = first.end;
    let relation: Relation | undefined;
    const second = text[end] === '.' ? readIdentifier(text, end + 1) : null;
    if (second) {
      end = second.end;
      relation = index.relations.get(`${first.name}.${second.name}`);
    } else {
      const candidates = index.relationsByName.get(first.name) ?? [];
      relation = candidates.length === 1 ? candidates[0] : candidates.find((candidate) => preferredSchemas.includes(candidate.schema));
    }
    let after = end;
    while (after < text.length && /\s/.test(text[after]!)) after += 1;
    // `name(` is a call and `name.column` is a column reference, not a relation.
    if (relation && text[after] !== '(' && text[end] !== '.') found.push({ relation, at });
    at = end;
  }
  return found;
}

/** The function's effective search_path from its proconfig, or null when it has none. */
export function fixedSearchPath(fn: FunctionInfo): string | null {
  const entry = fn.config.find((setting) => setting.toLowerCase().startsWith('search_path='));
  return entry === undefined ? null : entry.slice('search_path='.length);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Does SQL text (a view definition or a function body) restrict itself to the caller's tenant? It does when every
 * statement that reads a tenant relation compares a tenant column with the tenant setting, with a variable
 * assigned from it, or with a function that returns it. This is how a definer view or function that "filters by
 * the caller's tenant" is told apart from one that returns every tenant's rows.
 */
export function filtersByCallerTenant(catalog: Catalog, plan: TenancyPlan, sql: string, tenantReferences: TableReference[]): boolean {
  if (!tenantReferences.length) return false;
  const text = maskLiterals(sql, { dollarQuotes: false, keepStrings: true });
  const settingCall = new RegExp(`current_setting\\s*\\(\\s*'${escapeRegExp(plan.setting)}'`, 'i');
  // Functions whose body reads the tenant setting (e.g. a `current_tenant_id()` helper).
  const helpers = catalog.functions.filter((fn) => fn.returnKind === 'scalar' && !fn.returnsSet && settingCall.test(fn.source)).map((fn) => fn.name.toLowerCase());
  // PL/pgSQL variables assigned from the setting or a helper.
  const sources = [settingCall.source, ...helpers.map((name) => `\\b${escapeRegExp(name)}\\s*\\(`)];
  const sourcePattern = new RegExp(sources.join('|'), 'i');
  const variables = new Set<string>();
  // Assignments `name := expression` at the start of a statement (so that `name type := ...` is left to declarations).
  for (const match of text.matchAll(/(?:^|;|\bbegin\b|\bthen\b|\belse\b|\bloop\b|\bdeclare\b)\s*([A-Za-z_][A-Za-z0-9_]*)\s*:=\s*([^;]*)/gi)) {
    if (sourcePattern.test(match[2]!)) variables.add(match[1]!.toLowerCase());
  }
  // Declarations: `name [constant] type [not null] := expression` (or `default expression`).
  const declaration = /(?:^|[;\s])([A-Za-z_][A-Za-z0-9_]*)\s+(?:constant\s+)?[A-Za-z_][A-Za-z0-9_.]*(?:\s*\([^)]*\))?(?:\s*\[\])?(?:\s+not\s+null)?\s*(?::=|\bdefault\b)\s*([^;]*)/gi;
  for (const match of text.matchAll(declaration)) {
    if (sourcePattern.test(match[2]!)) variables.add(match[1]!.toLowerCase());
  }
  for (const match of text.matchAll(/\bselect\b([^;]*?)\binto\s+(?:strict\s+)?([A-Za-z_][A-Za-z0-9_]*)/gi)) {
    if (sourcePattern.test(match[1]!)) variables.add(match[2]!.toLowerCase());
  }
  const tenantValue = new RegExp([...sources, ...[...variables].map((name) => `\\b${escapeRegExp(name)}\\b`)].join('|'), 'i');
  const columns = new Set(plan.tenantColumns);
  if (plan.tenantKey.relation && tenantReferences.some((reference) => reference.relation.qualified === plan.tenantKey.relation)) columns.add(plan.tenantKey.column);
  const columnPattern = [...columns].map((column) => `"?${escapeRegExp(column)}"?`).join('|');
  if (!columnPattern) return false;
  const forward = new RegExp(
    `(?:^|[^A-Za-z0-9_$])(?:${columnPattern})\\s*=\\s*([^;]{0,200}?)(?=\\b(?:and|or|where|group|order|limit|union|returning|having|join|on)\\b|;|$)`,
    'gi',
  );
  const backward = new RegExp(`([^;=]{0,200})=\\s*\\(*\\s*(?:[A-Za-z_][A-Za-z0-9_]*\\.)?(?:${columnPattern})(?![A-Za-z0-9_$])`, 'gi');
  // The left operand of `... = tenant_id` starts after the last keyword or comma before it.
  const leftOperand = (captured: string) => captured.split(/\b(?:and|or|where|on|select|when|then|set)\b|,/i).pop() ?? '';
  const comparesTenant = (piece: string) =>
    [...piece.matchAll(forward)].some((match) => tenantValue.test(match[1] ?? '')) ||
    [...piece.matchAll(backward)].some((match) => tenantValue.test(leftOperand(match[1] ?? '')));
  // Statement boundaries: each tenant reference must sit in a statement with a tenant comparison.
  const statements: { start: number; end: number; filtered: boolean }[] = [];
  let start = 0;
  for (const piece of text.split(';')) {
    const end = start + piece.length;
    const filtered = comparesTenant(piece);
    statements.push({ start, end, filtered });
    start = end + 1;
  }
  return tenantReferences.every((reference) => statements.find((statement) => reference.at >= statement.start && reference.at <= statement.end)?.filtered);
}

/** The membership chain from a role to one it can SET ROLE to (`[from, ..., to]`), or null. */
export function membershipPath(catalog: Catalog, from: string, to: string): string[] | null {
  const previous = new Map<string, string | null>([[from, null]]);
  const queue = [from];
  while (queue.length) {
    const current = queue.shift()!;
    if (current === to) {
      const path: string[] = [];
      for (let step: string | null = to; step !== null; step = previous.get(step) ?? null) path.unshift(step);
      return path;
    }
    for (const parent of roleNamed(catalog, current)?.memberOf ?? []) {
      if (previous.has(parent)) continue;
      previous.set(parent, current);
      queue.push(parent);
    }
  }
  return null;
}

/** Roles that are, or that the application role can SET ROLE to, and carry a role attribute. Attributes are never inherited. */
export function elevatedRoleFindings(
  catalog: Catalog,
  plan: TenancyPlan,
  report: RuleReport,
  attribute: 'superuser' | 'bypassRls',
): Finding[] {
  const findings: Finding[] = [];
  const appRole = plan.role;
  const label = attribute === 'superuser' ? 'a superuser' : 'a role with BYPASSRLS';
  const option = attribute === 'superuser' ? 'nosuperuser' : 'nobypassrls';
  const reachable = [...reachableBy(catalog, appRole)].sort((a, b) => (a === appRole ? -1 : b === appRole ? 1 : a.localeCompare(b)));
  for (const name of reachable) {
    const role = roleNamed(catalog, name);
    if (!role || !role[attribute]) continue;
    // A superuser also bypasses RLS: superuser-role reports it, bypassrls-role does not repeat it.
    if (attribute === 'bypassRls' && role.superuser) continue;
    const sql = `select rolname, rolsuper, rolbypassrls, rolinherit, pg_has_role(${literal(appRole)}, oid, 'MEMBER') as app_role_can_set_role from pg_roles where rolname = ${literal(name)};`;
    if (name === appRole) {
      findings.push(
        report({
          severity: 'critical',
          object: appRole,
          message: `The application role ${appRole} is ${label}: no row-level security policy applies to it, on any table.`,
          sql,
          details: `pg_roles: ${appRole} rolsuper=${role.superuser} rolbypassrls=${role.bypassRls}`,
          fix: `alter role ${ident(appRole)} ${option};`,
        }),
      );
      continue;
    }
    const path = membershipPath(catalog, appRole, name) ?? [appRole, name];
    findings.push(
      report({
        severity: 'critical',
        object: name,
        message: `The application role ${appRole} can SET ROLE to ${name}, ${label} (membership ${path.join(' -> ')}): one statement and no policy applies to it, on any table.`,
        sql,
        details: `membership chain: ${path.join(' is a member of ')}; ${name}: rolsuper=${role.superuser} rolbypassrls=${role.bypassRls}`,
        fix: `revoke ${ident(path[1]!)} from ${ident(appRole)};\n-- or, if ${name} does not need it: alter role ${ident(name)} ${option};`,
      }),
    );
  }
  return findings;
}
