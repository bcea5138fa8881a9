/**
 * View definitions and function bodies (SQL, SQL-standard and PL/pgSQL, with the constant strings given to EXECUTE),
 * parsed (parse-bodies.ts): the statements they run, the relations those read or write, whether each keeps only the caller's
 * tenant/actor rows, and, for helpers called from policies, the body as one expression of the parameters.
 */
import type { Relation } from '../catalog/types.js';
import { analyzeExpr, type Env, type Scope } from './classify.js';
import { nodeBody, nodeList, nodeType, toExpr, toSelect, visitNodes, type Expr, type Select } from './expression.js';
import type { BodyAccess, BodyAnalysis, Command, ParameterColumn } from './model.js';
import { settingCall } from './value-sources.js';
import { substitute, type ParsedBody, type Raw, type Statement } from './parse-bodies.js';

// ------------------------------------------------------------------------------------------------------------
// Accesses: which relations each statement reads or writes, and whether it keeps only the caller's rows

interface Collector {
  scope: Scope;
  schemas: string[];
  accesses: BodyAccess[];
  calls: Set<string>;
  unqualified: Set<string>;
  /** `$n` compared with `relation.column`, keyed by the three. */
  parameters: Map<string, ParameterColumn>;
}

/**
 * The parameters a filter compares with columns of the relations in `aliases`: `col = $n` (either side, through
 * casts), `col in (..., $n, ...)`, `col = any($n)`. Sub-selects are left to their own statement's call.
 */
function parameterComparisons(collector: Collector, aliases: Map<string, Relation>, filter: Expr | null): void {
  if (!filter) return;
  const bare = (expr: Expr | null): Expr | null => (expr?.kind === 'cast' ? bare(expr.arg) : expr);
  const columnOf = (expr: Expr | null): { relation: Relation; column: string } | null => {
    const node = bare(expr);
    if (node?.kind !== 'column') return null;
    const candidates = node.qualifier !== null ? [aliases.get(node.qualifier)] : [...aliases.values()];
    const found = candidates.filter((relation): relation is Relation => Boolean(relation?.columns.some((column) => column.name === node.name)));
    return found.length === 1 ? { relation: found[0]!, column: node.name } : null;
  };
  const add = (column: { relation: Relation; column: string } | null, parameter: Expr | null) => {
    const node = bare(parameter);
    if (!column || node?.kind !== 'param') return;
    collector.parameters.set(`${node.name}\u0000${column.relation.qualified}\u0000${column.column}`, { parameter: node.name, relation: column.relation.qualified, column: column.column });
  };
  visitNodes(filter, (node, ancestors) => {
    if (ancestors.some((ancestor) => ancestor.kind === 'select')) return;
    if (node.kind === 'op' && node.op === '=' && node.left) {
      add(columnOf(node.left), node.right);
      add(columnOf(node.right), node.left);
    } else if (node.kind === 'in' && node.list) {
      for (const item of node.list) add(columnOf(node.left), item);
    } else if (node.kind === 'quantified' && node.op === '=' && node.quantifier === 'ANY' && node.right.kind !== 'select') {
      add(columnOf(node.left), node.right);
    }
  });
}

function newEnv(collector: Collector, aliases: Map<string, Relation>): Env {
  return {
    scope: collector.scope,
    relation: aliases.size === 1 ? [...aliases.values()][0]! : null,
    schemas: collector.schemas,
    rowNames: new Set(aliases.keys()),
    aliases,
    keyColumns: new Set(),
    clause: 'using',
    visiting: new Set(),
    references: new Map(),
    membership: null,
  };
}

/** Is the filter confined (every branch ties rows to the context)? Returns the reason when not. */
function filterReason(collector: Collector, aliases: Map<string, Relation>, filter: Expr | null): string | null {
  if (!filter) return 'no filter: every row';
  const branches = analyzeExpr(newEnv(collector, aliases), collector.scope.expand(filter, null, collector.schemas));
  const loose = branches.find((branch) => branch.kind !== 'confined' && branch.kind !== 'dead');
  if (!loose) return null;
  return loose.kind === 'unknown' ? `cannot tell whether ${loose.reason} keeps the caller's rows` : `${loose.kind} branch ${loose.reason}`;
}

function columnsOf(aliases: Map<string, Relation>): Set<string> {
  return new Set([...aliases.values()].flatMap((relation) => relation.columns.map((column) => column.name)));
}

function bind(expr: Expr, variables: Map<string, Expr>, aliases: Map<string, Relation>): Expr {
  return variables.size ? substitute(expr, variables, columnsOf(aliases)) : expr;
}

function fromAliases(collector: Collector, select: Select): Map<string, Relation> {
  const aliases = new Map<string, Relation>();
  for (const item of select.from) {
    if (!item.relation) continue;
    const relation = collector.scope.relationNamed(item.relation, collector.schemas);
    if (relation) aliases.set(item.alias ?? relation.name, relation);
  }
  return aliases;
}

/** Record the accesses of a SELECT; `outerConfined`: an enclosing statement already keeps only the caller's rows. */
function selectAccesses(collector: Collector, raw: Select, variables: Map<string, Expr>, command: Command, outerReason: string | null | undefined): string | null {
  if (raw.setOperation) {
    const reasons = raw.setOperation.arms.map((arm) => selectAccesses(collector, arm, variables, command, outerReason));
    if (raw.setOperation.op === 'intersect') return reasons.every((reason) => reason !== null) ? reasons[0]! : null;
    if (raw.setOperation.op === 'except') return reasons[0] ?? null;
    return reasons.find((reason) => reason !== null) ?? null;
  }
  const aliases = fromAliases(collector, raw);
  const where = raw.where ? bind(raw.where, variables, aliases) : null;
  parameterComparisons(collector, aliases, where);
  const ownReason = filterReason(collector, aliases, where);
  // Inside a statement that is confined, a sub-select only filters the caller's rows.
  const reason = outerReason === null ? null : ownReason;
  for (const item of raw.from) {
    if (item.relation && !item.subquery && !item.relation.includes('.')) collector.unqualified.add(item.relation);
    if (item.relation) {
      const relation = collector.scope.relationNamed(item.relation, collector.schemas);
      if (relation) collector.accesses.push({ relation: relation.qualified, command, confined: reason === null, reason: reason ?? '' });
    }
    // A sub-select in FROM is confined by its own filter, or by this statement's.
    if (item.subquery) selectAccesses(collector, item.subquery, variables, 'SELECT', reason === null ? null : undefined);
    if (item.call?.kind === 'call') collector.calls.add(item.call.name);
  }
  for (const part of [...raw.targets, ...(where ? [where] : []), ...raw.other]) expressionAccesses(collector, bind(part, variables, aliases), variables, reason);
  return reason;
}

/** Sub-selects and calls inside an expression. */
function expressionAccesses(collector: Collector, expr: Expr, variables: Map<string, Expr>, enclosing: string | null | undefined): void {
  const outermost: Select[] = [];
  visitNodes(expr, (node, ancestors) => {
    if (node.kind === 'call') collector.calls.add(node.name);
    // Only the outermost sub-selects: selectAccesses handles what is nested in them.
    if (node.kind === 'select' && !ancestors.some((ancestor) => ancestor.kind === 'select')) outermost.push(node);
  });
  for (const select of outermost) selectAccesses(collector, select, variables, 'SELECT', enclosing === null ? null : undefined);
}

function statementAccesses(collector: Collector, statement: Statement): void {
  if (statement.expression) {
    expressionAccesses(collector, statement.expression, statement.variables, undefined);
    return;
  }
  const type = nodeType(statement.node);
  const raw = nodeBody(statement.node) as Raw;
  const target = (): { relation: Relation | undefined; alias: string } => {
    const range = nodeBody({ RangeVar: raw.relation }) as Raw;
    const name = [range.schemaname, range.relname].filter(Boolean).join('.');
    const alias = (range.alias as { aliasname?: string } | undefined)?.aliasname ?? String(range.relname ?? '');
    if (!range.schemaname && range.relname) collector.unqualified.add(String(range.relname));
    return { relation: collector.scope.relationNamed(name, collector.schemas), alias };
  };
  switch (type) {
    case 'SelectStmt':
      selectAccesses(collector, toSelect(statement.node), statement.variables, 'SELECT', undefined);
      return;
    case 'InsertStmt': {
      const { relation } = target();
      const source = raw.selectStmt ? toSelect(raw.selectStmt) : null;
      let confined = false;
      if (source) {
        const env = newEnv(collector, new Map());
        const values = source.setOperation ? [] : source.targets.map((value) => bind(value, statement.variables, new Map()));
        // An INSERT keeps to the caller's tenant when it writes a context value (the tenant key) into the row.
        confined = values.some((value) => {
          const branches = analyzeExpr({ ...env }, { kind: 'op', op: '=', left: { kind: 'column', qualifier: null, name: '(inserted)' }, right: value });
          return branches.every((branch) => branch.kind === 'confined');
        });
        selectAccesses(collector, source, statement.variables, 'SELECT', undefined);
      }
      if (relation) collector.accesses.push({ relation: relation.qualified, command: 'INSERT', confined, reason: confined ? '' : 'inserts rows without a context value' });
      return;
    }
    case 'UpdateStmt':
    case 'DeleteStmt': {
      const { relation, alias } = target();
      const aliases = new Map<string, Relation>();
      if (relation) aliases.set(alias, relation);
      const extra = toSelect({ SelectStmt: { fromClause: raw.fromClause ?? raw.usingClause, targetList: [] } });
      for (const [name, other] of fromAliases(collector, extra)) aliases.set(name, other);
      const where = raw.whereClause ? bind(toExpr(raw.whereClause), statement.variables, aliases) : null;
      parameterComparisons(collector, aliases, where);
      const reason = filterReason(collector, aliases, where);
      if (relation) collector.accesses.push({ relation: relation.qualified, command: type === 'UpdateStmt' ? 'UPDATE' : 'DELETE', confined: reason === null, reason: reason ?? '' });
      if (where) expressionAccesses(collector, where, statement.variables, reason);
      for (const item of nodeList(raw.targetList)) {
        const value = (nodeBody(item) as Raw).val;
        if (value) expressionAccesses(collector, bind(toExpr(value), statement.variables, aliases), statement.variables, reason);
      }
      return;
    }
    default:
      return;
  }
}

/** Settings a parsed body reads with current_setting('constant name'). */
function settingsIn(parsed: ParsedBody): string[] {
  const found = new Set<string>();
  const visit = (value: unknown): void => {
    if (!value || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach(visit);
    const type = nodeType(value);
    if (type === 'FuncCall') {
      const call = settingCall(toExpr(value));
      if (call) found.add(call.setting);
    }
    Object.values(type ? nodeBody(value) : (value as object)).forEach(visit);
  };
  const visitExpr = (expr: Expr) =>
    visitNodes(expr, (node) => {
      const call = node.kind === 'call' ? settingCall(node) : null;
      if (call) found.add(call.setting);
    });
  for (const statement of parsed.statements) {
    visit(statement.node);
    if (statement.expression) visitExpr(statement.expression);
    // PL/pgSQL variables (declared defaults, assignments) the statement sees.
    for (const value of statement.variables.values()) visitExpr(value);
  }
  if (parsed.inline) visitExpr(parsed.inline);
  for (const value of parsed.evaluated) visitExpr(value);
  return [...found];
}

/** Analyse a parsed body: accesses, verdict, reason. */
export function bodyAnalysis(scope: Scope, name: string, kind: 'view' | 'function', parsed: ParsedBody, schemas: string[]): BodyAnalysis {
  const collector: Collector = { scope, schemas, accesses: [], calls: new Set(), unqualified: new Set(), parameters: new Map() };
  for (const statement of parsed.statements) statementAccesses(collector, statement);
  const open = collector.accesses.find((access) => !access.confined);
  let verdict: BodyAnalysis['verdict'] = 'confined';
  let reason = '';
  if (open) {
    verdict = 'open';
    reason = `${open.command.toLowerCase()} on ${open.relation}: ${open.reason}`;
  } else if (parsed.dynamic.length) {
    verdict = 'unknown';
    reason = `dynamic SQL not analysed: ${parsed.dynamic[0]}`;
  } else if (parsed.error) {
    verdict = 'unknown';
    reason = parsed.error;
  }
  return {
    name,
    kind,
    verdict,
    reason,
    settings: settingsIn(parsed),
    accesses: collector.accesses,
    relations: [...new Set(collector.accesses.map((access) => access.relation))],
    unqualified: [...collector.unqualified],
    dynamicSql: parsed.dynamic,
    calls: [...collector.calls],
    parameterColumns: [...collector.parameters.values()],
  };
}
