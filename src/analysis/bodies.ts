/**
 * View definitions and function bodies (SQL, SQL-standard and PL/pgSQL, with the constant strings given to EXECUTE),
 * parsed: the statements they run, the relations those read or write, whether each keeps only the caller's
 * tenant/actor rows, and, for helpers called from policies, the body as one expression of the parameters.
 */
import type { FunctionInfo, Relation } from '../catalog/types.js';
import { analyzeExpr, type Env, type Scope } from './classify.js';
import { nodeBody, nodeList, nodeType, render, someNode, toExpr, toSelect, visitNodes, type Expr, type Select } from './expression.js';
import type { BodyAccess, BodyAnalysis, Command, ParameterColumn } from './model.js';
import { parseExpression, parsePlpgsql, parseStatements, scanTokens, type Node } from './parse.js';
import { settingCall } from './value-sources.js';

/** One statement of a body, with the variables it sees. */
interface Statement {
  node: Node;
  variables: Map<string, Expr>;
  /** Set instead of a statement for an expression (an IF condition, an assignment) whose sub-selects read relations. */
  expression?: Expr;
}

export interface ParsedBody {
  statements: Statement[];
  /** The body as one expression of its parameters ($1..$n), when it is a single SELECT or RETURN of one value. */
  inline: Expr | null;
  /** EXECUTE / RETURN QUERY EXECUTE / FOR ... EXECUTE whose SQL is not a constant. */
  dynamic: string[];
  /** Why the body could not be read, or null. */
  error: string | null;
  /** PL/pgSQL expressions evaluated outside SQL statements (IF conditions, assignments, RETURN values, declared defaults). */
  evaluated: Expr[];
}

const EMPTY: ParsedBody = { statements: [], inline: null, dynamic: [], error: null, evaluated: [] };

/** A string literal, a cast of one, or a concatenation of them: the SQL an EXECUTE runs. */
function constantString(expr: Expr): string | null {
  if (expr.kind === 'literal' && expr.type === 'string') return expr.value;
  if (expr.kind === 'cast') return constantString(expr.arg);
  if (expr.kind === 'op' && expr.op === '||' && expr.left) {
    const left = constantString(expr.left);
    const right = constantString(expr.right);
    return left !== null && right !== null ? left + right : null;
  }
  return null;
}

/**
 * Replace parameter names (and `$n`) by `{ kind: 'param', name: '$n' }`, and variables by their values. A
 * parameter qualified by its function's name (`has_role_on_account.account_id`, how a SQL body tells it from a
 * column of the same name) is the parameter too.
 */
function substitute(expr: Expr, names: Map<string, Expr>, shadowed: Set<string>): Expr {
  const visit = (node: Expr): Expr => {
    if (node.kind === 'column' && node.qualifier === null && names.has(node.name) && !shadowed.has(node.name)) return names.get(node.name)!;
    if (node.kind === 'column' && node.qualifier !== null && names.has(`${node.qualifier}.${node.name}`)) return names.get(`${node.qualifier}.${node.name}`)!;
    return mapChildren(node, visit);
  };
  return visit(expr);
}

function mapSelect(select: Select, visit: (node: Expr) => Expr): Select {
  if (select.setOperation) return { ...select, setOperation: { ...select.setOperation, arms: select.setOperation.arms.map((arm) => mapSelect(arm, visit)) } };
  return {
    ...select,
    targets: select.targets.map(visit),
    from: select.from.map((item) => ({ ...item, subquery: item.subquery ? mapSelect(item.subquery, visit) : null, call: item.call ? visit(item.call) : null })),
    where: select.where ? visit(select.where) : null,
    other: select.other.map(visit),
  };
}

/** Rebuild a node with `visit` applied to its direct children. */
export function mapChildren(node: Expr, visit: (node: Expr) => Expr): Expr {
  switch (node.kind) {
    case 'and':
    case 'or':
      return { ...node, args: node.args.map(visit) };
    case 'not':
    case 'null-test':
    case 'bool-test':
    case 'cast':
    case 'field':
      return { ...node, arg: visit(node.arg) } as Expr;
    case 'op':
      return { ...node, left: node.left ? visit(node.left) : null, right: visit(node.right) };
    case 'distinct':
      return { ...node, left: visit(node.left), right: visit(node.right) };
    case 'in':
      return { ...node, left: visit(node.left), list: node.list ? node.list.map(visit) : null, subquery: node.subquery ? mapSelect(node.subquery, visit) : null };
    case 'quantified':
      return { ...node, left: visit(node.left), right: node.right.kind === 'select' ? mapSelect(node.right, visit) : visit(node.right) };
    case 'exists':
    case 'subquery':
      return { ...node, subquery: mapSelect(node.subquery, visit) };
    case 'call':
      return { ...node, args: node.args.map(visit) };
    case 'case':
      return { ...node, subject: node.subject ? visit(node.subject) : null, whens: node.whens.map((when) => ({ when: visit(when.when), then: visit(when.then) })), otherwise: node.otherwise ? visit(node.otherwise) : null };
    case 'array':
    case 'row':
      return { ...node, items: node.items.map(visit) };
    case 'subscript':
      return { ...node, arg: visit(node.arg), indexes: node.indexes.map(visit) };
    case 'inlined':
      return { ...node, body: visit(node.body) };
    case 'opaque':
      return { ...node, children: node.children.map(visit) };
    default:
      return node;
  }
}

function parameterNames(fn: FunctionInfo): Map<string, Expr> {
  const names = new Map<string, Expr>();
  fn.argumentNames.forEach((name, index) => {
    if (!name) return;
    names.set(name, { kind: 'param', name: `$${index + 1}` });
    names.set(`${fn.name}.${name}`, { kind: 'param', name: `$${index + 1}` });
  });
  return names;
}

/** A single-statement SQL body as one value: `select <expr>` is the expression, `select ... from ...` a sub-select. */
function statementValue(node: Node): Expr | null {
  const type = nodeType(node);
  if (type === 'ReturnStmt') return toExpr(nodeBody(node).returnval);
  if (type !== 'SelectStmt') return null;
  const select = toSelect(node);
  if (!select.setOperation && !select.from.length && !select.where && select.targets.length === 1 && !select.other.length) return select.targets[0]!;
  return { kind: 'subquery', subquery: select };
}

/** Parse a SQL-language body: plain statements, or a SQL-standard body (RETURN ... / BEGIN ATOMIC ... END). */
function sqlStatements(source: string): Node[] {
  try {
    return parseStatements(source).map((raw) => raw.stmt as Node);
  } catch (plain) {
    let wrapped;
    try {
      wrapped = parseStatements(`create function rls_audit_body() returns void language sql ${source}`);
    } catch {
      throw plain;
    }
    const body = nodeBody(wrapped[0]?.stmt).sql_body;
    if (nodeType(body) === 'ReturnStmt') return [body as Node];
    return nodeList(body).flatMap((inner) => nodeList(inner)) as Node[];
  }
}

function parseSqlBody(fn: FunctionInfo): ParsedBody {
  let nodes: Node[];
  try {
    nodes = sqlStatements(fn.source);
  } catch (error) {
    return { ...EMPTY, error: `the body did not parse: ${(error as Error).message}` };
  }
  const params = parameterNames(fn);
  const statements = nodes.map((node) => ({ node, variables: params }));
  const last = nodes[nodes.length - 1];
  let inline: Expr | null = null;
  if (nodes.length === 1 && last) {
    const value = statementValue(last);
    inline = value ? substitute(value, params, new Set()) : null;
  }
  return { statements, inline, dynamic: [], error: null, evaluated: [] };
}

type Raw = Record<string, unknown>;

function plpgsqlQuery(expr: unknown): string | null {
  const query = (nodeBody(expr) as { query?: string }).query;
  return typeof query === 'string' ? query : null;
}

/** The expression of a PL/pgSQL assignment `target := expression`, found with the lexer. */
function assignedExpression(query: string): string | null {
  const tokens = scanTokens(query);
  const assign = tokens.find((token) => token.text === ':=' || token.tokenName === 'COLON_EQUALS');
  return assign ? query.slice(assign.end) : null;
}

function parsePlpgsqlBody(fn: FunctionInfo): ParsedBody {
  if (!fn.definition) return { ...EMPTY, error: 'no function definition to parse' };
  let functions: unknown[];
  try {
    functions = parsePlpgsql(fn.definition);
  } catch (error) {
    return { ...EMPTY, error: `the PL/pgSQL body did not parse: ${(error as Error).message}` };
  }
  const root = nodeBody(functions[0]) as { datums?: unknown[]; action?: unknown };
  const datums = (root.datums ?? []).map((datum) => nodeBody(datum) as { refname?: string; default_val?: unknown; fields?: { name: string; varno: number }[] });
  const variables = parameterNames(fn);
  const assignments = new Map<string, number>();
  const statements: Statement[] = [];
  const dynamic: string[] = [];
  const returns: Expr[] = [];
  const guards: { when: Expr; then: Expr }[] = [];
  let simple = true;
  const errors: string[] = [];

  const assign = (name: string | undefined, value: Expr) => {
    if (!name) return;
    const count = (assignments.get(name) ?? 0) + 1;
    assignments.set(name, count);
    const current = substitute(value, variables, new Set());
    // A variable assigned more than once keeps a value only when every assignment is the same expression.
    if (count > 1 && variables.has(name) && render(variables.get(name)!) !== render(current)) variables.set(name, { kind: 'opaque', label: `variable ${name}`, children: [] });
    else variables.set(name, current);
  };
  const expression = (query: string): Expr | null => {
    try {
      return toExpr(parseExpression(query));
    } catch (error) {
      errors.push(`${query}: ${(error as Error).message}`);
      return null;
    }
  };
  const sql = (query: string, into: string[] = []) => {
    try {
      for (const raw of parseStatements(query)) {
        statements.push({ node: raw.stmt as Node, variables: new Map(variables) });
        if (into.length && nodeType(raw.stmt) === 'SelectStmt') {
          const select = toSelect(raw.stmt);
          into.forEach((name, index) => {
            const target = select.targets[index];
            if (!target) return;
            assign(name, select.from.length || select.where ? { kind: 'subquery', subquery: { ...select, targets: [target] } } : target);
          });
        }
      }
    } catch (error) {
      errors.push(`${query}: ${(error as Error).message}`);
    }
  };
  const executed = (expr: unknown, label: string) => {
    const query = plpgsqlQuery(expr);
    if (query === null) return;
    const parsed = expression(query);
    const constant = parsed ? constantString(parsed) : null;
    if (constant !== null) sql(constant);
    else dynamic.push(`${label} ${query.trim()}`);
  };

  datums.forEach((datum) => {
    if (datum.refname && datum.default_val) {
      const query = plpgsqlQuery(datum.default_val);
      const value = query ? expression(query) : null;
      if (value) assign(datum.refname, value);
    }
  });

  const visitStatements = (list: unknown) => {
    for (const statement of Array.isArray(list) ? list : []) visitStatement(statement);
  };
  const visitStatement = (statement: unknown) => {
    const type = nodeType(statement);
    const raw = nodeBody(statement) as Raw;
    switch (type) {
      case 'PLpgSQL_stmt_block':
        visitStatements(raw.body);
        for (const handler of ((nodeBody(raw.exceptions) as { exc_list?: unknown[] }).exc_list ?? [])) visitStatements((nodeBody(handler) as Raw).action);
        return;
      case 'PLpgSQL_stmt_assign': {
        const query = plpgsqlQuery(raw.expr);
        const name = datums[Number(raw.varno ?? 0)]?.refname;
        const text = query ? assignedExpression(query) : null;
        const value = text ? expression(text) : null;
        if (value) {
          assign(name, value);
          sqlReads(value);
        }
        return;
      }
      case 'PLpgSQL_stmt_execsql': {
        const query = plpgsqlQuery(raw.sqlstmt);
        const target = nodeBody(raw.target) as { fields?: { name: string }[]; refname?: string };
        const into = raw.into ? (target.fields?.map((field) => field.name) ?? (target.refname ? [target.refname] : [])) : [];
        if (query) sql(query, into);
        simple = false;
        return;
      }
      case 'PLpgSQL_stmt_return': {
        const query = plpgsqlQuery(raw.expr);
        const value = query ? expression(query) : null;
        if (value) {
          returns.push(substitute(value, variables, new Set()));
          sqlReads(value);
        }
        return;
      }
      case 'PLpgSQL_stmt_return_query':
        if (raw.query) {
          const query = plpgsqlQuery(raw.query);
          if (query) sql(query);
        }
        if (raw.dynquery) executed(raw.dynquery, 'RETURN QUERY EXECUTE');
        simple = false;
        return;
      case 'PLpgSQL_stmt_dynexecute':
        executed(raw.query, 'EXECUTE');
        simple = false;
        return;
      case 'PLpgSQL_stmt_dynfors':
        executed(raw.query, 'FOR ... IN EXECUTE');
        visitStatements(raw.body);
        simple = false;
        return;
      case 'PLpgSQL_stmt_fors':
      case 'PLpgSQL_stmt_forc':
      case 'PLpgSQL_stmt_open': {
        const query = plpgsqlQuery(raw.query);
        if (query) sql(query);
        if (raw.dynquery) executed(raw.dynquery, 'OPEN ... FOR EXECUTE');
        visitStatements(raw.body);
        simple = false;
        return;
      }
      case 'PLpgSQL_stmt_perform':
      case 'PLpgSQL_stmt_call': {
        const query = plpgsqlQuery(raw.expr);
        if (query) sql(query);
        simple = false;
        return;
      }
      case 'PLpgSQL_stmt_if': {
        // A guard before the one RETURN (`if auth.uid() is null then return false; end if;`): the body is then
        // CASE WHEN guard THEN value ... ELSE <the RETURN> END, still one expression.
        const thenBody = Array.isArray(raw.then_body) ? raw.then_body : [];
        const guardQuery = plpgsqlQuery(raw.cond);
        const guardReturn = thenBody.length === 1 && nodeType(thenBody[0]) === 'PLpgSQL_stmt_return' ? plpgsqlQuery((nodeBody(thenBody[0]) as Raw).expr) : null;
        if (simple && !returns.length && !(raw.elsif_list as unknown[] | undefined)?.length && !(raw.else_body as unknown[] | undefined)?.length && guardQuery && guardReturn) {
          const condition = expression(guardQuery);
          const value = expression(guardReturn);
          if (condition && value) {
            sqlReads(condition);
            sqlReads(value);
            guards.push({ when: substitute(condition, variables, new Set()), then: substitute(value, variables, new Set()) });
            return;
          }
        }
        for (const condition of [raw.cond, ...((raw.elsif_list as unknown[] | undefined) ?? []).map((elsif) => (nodeBody(elsif) as Raw).cond)]) {
          const query = plpgsqlQuery(condition);
          const value = query ? expression(query) : null;
          if (value) sqlReads(value);
        }
        visitStatements(raw.then_body);
        for (const elsif of (raw.elsif_list as unknown[] | undefined) ?? []) visitStatements((nodeBody(elsif) as Raw).stmts);
        visitStatements(raw.else_body);
        simple = false;
        return;
      }
      default: {
        // Loops, CASE, RAISE, ... : read their SQL and nested statements.
        for (const [key, value] of Object.entries(raw)) {
          if (Array.isArray(value) && value.some((item) => nodeType(item)?.startsWith('PLpgSQL_stmt'))) visitStatements(value);
          else if (nodeType(value) === 'PLpgSQL_expr' && key !== 'expr') {
            const query = plpgsqlQuery(value);
            const parsed = query ? expression(query) : null;
            if (parsed) sqlReads(parsed);
          }
        }
        simple = false;
      }
    }
  };
  /** Sub-selects inside an expression (an IF condition, an assignment) read relations too. */
  const evaluated: Expr[] = [];
  const sqlReads = (value: Expr) => {
    evaluated.push(value);
    if (walkHasSelect(value)) statements.push({ node: { SelectStmt: {} } as unknown as Node, variables: new Map(variables), expression: value });
  };
  visitStatement(root.action);
  const inline = simple && returns.length === 1 && !dynamic.length ? (guards.length ? ({ kind: 'case', subject: null, whens: guards, otherwise: returns[0]! } as Expr) : returns[0]!) : null;
  return { statements, inline, dynamic, error: errors.length ? `part of the body did not parse: ${errors[0]}` : null, evaluated: [...evaluated, ...variables.values()] };
}

function walkHasSelect(expr: Expr): boolean {
  return someNode(expr, (node) => node.kind === 'select' && node.from.length > 0);
}

/** Parse a function's body once. */
export function parseFunctionBody(fn: FunctionInfo): ParsedBody {
  if (fn.language === 'sql') return parseSqlBody(fn);
  if (fn.language === 'plpgsql') return parsePlpgsqlBody(fn);
  return { ...EMPTY, error: `a ${fn.language} function body is not read` };
}

/** Parse a view's definition (pg_get_viewdef). */
export function parseViewDefinition(relation: Relation): ParsedBody {
  if (!relation.viewDefinition) return { ...EMPTY, error: 'no view definition' };
  try {
    return { ...EMPTY, statements: parseStatements(relation.viewDefinition).map((raw) => ({ node: raw.stmt as Node, variables: new Map() })) };
  } catch (error) {
    return { ...EMPTY, error: `the view definition did not parse: ${(error as Error).message}` };
  }
}

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
