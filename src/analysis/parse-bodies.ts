/**
 * View definitions and function bodies (SQL, SQL-standard and PL/pgSQL, with the constant strings given to EXECUTE),
 * parsed into the statements they run, with the variables each sees; bodies.ts collects what those statements access.
 */
import type { FunctionInfo, Relation } from '../catalog/types.js';
import { nodeBody, nodeList, nodeType, render, someNode, toExpr, toSelect, type Expr, type Select } from './expression.js';
import { parseExpression, parsePlpgsql, parseStatements, scanTokens, type Node } from './parse.js';

/** One statement of a body, with the variables it sees. */
export interface Statement {
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
export function substitute(expr: Expr, names: Map<string, Expr>, shadowed: Set<string>): Expr {
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

export type Raw = Record<string, unknown>;

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
