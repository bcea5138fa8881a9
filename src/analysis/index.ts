/**
 * The analysis stage: `analyze(catalog, role)` reads every policy expression, view definition and function body
 * with PostgreSQL's parser and returns one plain value (see model.ts). Nothing here is cached between calls.
 */
import type { Catalog, FunctionInfo, Policy, Relation } from '../catalog/types.js';
import { inheritedRoles } from '../catalog/roles.js';
import { bodyAnalysis } from './bodies.js';
import { mapChildren, parseFunctionBody, parseViewDefinition, type ParsedBody } from './parse-bodies.js';
import { analyzeExpr, isOpenKind, OPEN_WIDTH, type Env, type Scope } from './classify.js';
import { collectReferences, settingShape } from './context-references.js';
import { nodeType, nodeBody, someNode, toExpr, visitNodes, type Expr, type Select } from './expression.js';
import type {
  Analysis,
  BodyAnalysis,
  Branch,
  CallSite,
  Clause,
  Command,
  CommandClauseAnalysis,
  ContextReference,
  ExpressionAnalysis,
  OpenKind,
  OpenPath,
  PolicyAnalysis,
  RelationAnalysis,
} from './model.js';
import { byteToChar, parseExpression, scanTokens } from './parse.js';
import { referenceSource, settingCall } from './value-sources.js';

export type * from './model.js';
export { loadParser } from './parse.js';

/** Where the policies decide which rows a command sees (USING) and which rows it may write (WITH CHECK). */
export const COMMAND_CLAUSES: readonly { command: Command; clause: Clause }[] = [
  { command: 'SELECT', clause: 'using' },
  { command: 'INSERT', clause: 'check' },
  { command: 'UPDATE', clause: 'using' },
  { command: 'UPDATE', clause: 'check' },
  { command: 'DELETE', clause: 'using' },
];

const MAX_INLINE_DEPTH = 4;

/** The expression a policy applies for a clause: WITH CHECK falls back to USING (ALL and UPDATE policies). */
export function clauseText(policy: Policy, clause: Clause): string | null {
  return clause === 'using' ? policy.using : (policy.withCheck ?? (policy.command === 'INSERT' ? null : policy.using));
}

function searchSchemas(fn: FunctionInfo): string[] {
  const entry = fn.config.find((setting) => setting.toLowerCase().startsWith('search_path='));
  if (entry === undefined) return [fn.schema, 'public'];
  return entry
    .slice('search_path='.length)
    .split(',')
    .map((part) => part.trim())
    .map((part) => (part.startsWith('"') && part.endsWith('"') ? part.slice(1, -1) : part))
    .filter((part) => part && part !== '$user' && part !== 'pg_temp' && part !== 'pg_catalog');
}

/** The function calls written in an expression, with their spans in the text. */
function callSites(text: string, root: Expr): CallSite[] {
  const prefix = 'SELECT ('.length;
  const calls: { name: string; at: number; inSubselect: boolean; setting: CallSite['setting'] }[] = [];
  visitNodes(root, (node, ancestors) => {
    if (node.kind !== 'call' || node.at === null) return;
    const setting = settingCall(node);
    calls.push({
      name: node.name,
      at: node.at - prefix,
      inSubselect: ancestors.some((ancestor) => ancestor.kind === 'select'),
      setting: setting ? { name: setting.setting, missingOk: setting.missingOk, nullif: settingShape(node, [...ancestors]).nullif } : null,
    });
  });
  if (!calls.length) return [];
  const tokens = scanTokens(text);
  const toChar = byteToChar(text);
  for (const call of calls) call.at = toChar(call.at);
  const sites: CallSite[] = [];
  for (const call of calls) {
    const first = tokens.findIndex((token) => token.start === call.at);
    if (first < 0) continue;
    const open = tokens.findIndex((token, index) => index > first && token.text === '(');
    if (open < 0) continue;
    let depth = 0;
    let close = -1;
    for (let index = open; index < tokens.length; index += 1) {
      if (tokens[index]!.text === '(') depth += 1;
      else if (tokens[index]!.text === ')') {
        depth -= 1;
        if (depth === 0) {
          close = index;
          break;
        }
      }
    }
    if (close < 0) continue;
    sites.push({ name: call.name, start: call.at, end: tokens[close]!.end, inSubselect: call.inSubselect, setting: call.setting });
  }
  return sites;
}

/**
 * Analyse a catalog for a role: the policies that apply to it per relation and command, with a verdict for
 * each USING / WITH CHECK; the context references the policies use; view definitions and function bodies.
 * With `role` null (the role is not known yet), policy scope and per-command verdicts are left empty.
 */
export function analyze(catalog: Catalog, role: string | null): Analysis {
  const relationsByName = new Map(catalog.relations.map((relation) => [relation.qualified, relation]));
  const relationsByBareName = new Map<string, Relation[]>();
  for (const relation of catalog.relations) relationsByBareName.set(relation.name, [...(relationsByBareName.get(relation.name) ?? []), relation]);
  const functionsByName = new Map<string, FunctionInfo[]>();
  for (const fn of catalog.functions) {
    for (const key of [fn.name.toLowerCase(), `${fn.schema}.${fn.name}`.toLowerCase()]) functionsByName.set(key, [...(functionsByName.get(key) ?? []), fn]);
  }
  const inherited = role === null ? null : inheritedRoles(catalog, role);
  const roleInfo = role === null ? undefined : catalog.roles.find((candidate) => candidate.name === role);
  const bodies = new Map<number, ParsedBody>();
  const sessionReaders = new Map<number, boolean>();

  const parsedBody = (fn: FunctionInfo): ParsedBody => {
    let body = bodies.get(fn.oid);
    if (!body) {
      body = parseFunctionBody(fn);
      bodies.set(fn.oid, body);
    }
    return body;
  };

  const relationNamed = (name: string, schemas: string[]): Relation | undefined => {
    const lower = name;
    if (lower.includes('.')) return relationsByName.get(lower);
    for (const schema of [...schemas, 'public']) {
      const found = relationsByName.get(`${schema}.${lower}`);
      if (found) return found;
    }
    const candidates = relationsByBareName.get(lower) ?? [];
    return candidates.length === 1 ? candidates[0] : undefined;
  };

  const functionNamed = (name: string, arity: number, schemas: string[]): FunctionInfo | undefined => {
    const candidates = functionsByName.get(name) ?? [];
    const fits = candidates.filter((fn) => fn.argumentTypes.length >= arity && fn.argumentTypes.length - fn.defaultArguments <= arity);
    if (name.includes('.')) return fits[0];
    return fits.find((fn) => schemas.includes(fn.schema)) ?? fits.find((fn) => fn.schema === 'public') ?? fits[0];
  };

  const scope: Scope = {
    catalog,
    inherited,
    relationNamed,
    functionNamed,
    inlineBody: (fn) => parsedBody(fn).inline,
    readsSession: (fn) => {
      const known = sessionReaders.get(fn.oid);
      if (known !== undefined) return known;
      sessionReaders.set(fn.oid, false);
      const body = parsedBody(fn);
      let reads = body.error !== null && !body.statements.length && body.inline === null;
      const visit = (value: unknown): void => {
        if (reads || !value || typeof value !== 'object') return;
        if (Array.isArray(value)) return value.forEach(visit);
        const type = nodeType(value);
        if (type === 'FuncCall' || type === 'SQLValueFunction') {
          const expr = toExpr(value);
          if (referenceSource(scope, expr, searchSchemas(fn))) {
            reads = true;
            return;
          }
        }
        Object.values(type ? nodeBody(value) : (value as object)).forEach(visit);
      };
      for (const statement of body.statements) visit(statement.node);
      if (!reads && body.inline) reads = someNode(body.inline, (node) => node.kind !== 'select' && referenceSource(scope, node, searchSchemas(fn)) !== null);
      // PL/pgSQL expressions (RETURN, assignments, conditions) of a body that is not one expression.
      if (!reads) reads = body.evaluated.some((expr) => someNode(expr, (node) => node.kind !== 'select' && referenceSource(scope, node, searchSchemas(fn)) !== null));
      sessionReaders.set(fn.oid, reads);
      return reads;
    },
    readsConfined: (relation, visiting) => readsConfined(relation, visiting),
    expand: (root, rowName, schemas) => expand(root, rowName, schemas),
  };

  /** Replace calls of helper functions with their bodies (arguments substituted), to a bounded depth. */
  const expand = (root: Expr, rowName: string | null, schemas: string[], depth = 0, active: Set<number> = new Set()): Expr => {
    const visit = (node: Expr, inSubselect: boolean): Expr => {
      if (node.kind === 'call' && depth < MAX_INLINE_DEPTH) {
        const fn = functionNamed(node.name, node.args.length, schemas);
        const body = fn && !active.has(fn.oid) ? parsedBody(fn).inline : null;
        if (fn && body) {
          const args = node.args.map((arg) => qualifyRow(visit(arg, inSubselect), rowName, inSubselect));
          const substituted = substituteParams(body, args, fn);
          return { kind: 'inlined', function: fn.signature, call: node, body: expand(substituted, rowName, searchSchemas(fn), depth + 1, new Set([...active, fn.oid])) };
        }
      }
      if (node.kind === 'exists' || node.kind === 'subquery' || node.kind === 'in' || node.kind === 'quantified') {
        return mapChildren(node, (child) => visit(child, true));
      }
      return mapChildren(node, (child) => visit(child, inSubselect));
    };
    return visit(root, false);
  };

  interface Parsed {
    node: Expr | null;
    error: string | null;
    calls: CallSite[];
    /** Has `column IS NULL`, whose meaning depends on the relation's key columns. */
    nullTest: boolean;
  }
  const parseCache = new Map<string, Parsed>();
  const parsed = (text: string): Parsed => {
    let entry = parseCache.get(text);
    if (!entry) {
      try {
        const node = toExpr(parseExpression(text));
        entry = { node, error: null, calls: callSites(text, node), nullTest: someNode(node, (candidate) => candidate.kind === 'null-test' && candidate.arg.kind === 'column') };
      } catch (error) {
        entry = { node: null, error: (error as Error).message, calls: [], nullTest: false };
      }
      parseCache.set(text, entry);
    }
    return entry;
  };

  const relationsRead = (root: Expr, schemas: string[]): string[] => {
    const found = new Set<string>();
    visitNodes(root, (node) => {
      if (node.kind !== 'select') return;
      for (const item of node.from) {
        const relation = item.relation ? relationNamed(item.relation, schemas) : undefined;
        if (relation) found.add(relation.qualified);
      }
    });
    return [...found];
  };

  /**
   * Columns of the relations in the FROM of the sub-selects under `root`: a qualified column by the FROM item its
   * qualifier names, an unqualified one by the innermost FROM relation that has it.
   */
  const subselectColumnsRead = (root: Expr, schemas: string[]): { relation: string; column: string }[] => {
    const found = new Map<string, { relation: string; column: string }>();
    visitNodes(root, (node, ancestors) => {
      if (node.kind !== 'column') return;
      const selects = ancestors.filter((ancestor): ancestor is Select => ancestor.kind === 'select').reverse();
      for (const select of selects) {
        const items = select.from.flatMap((item) => {
          const relation = item.relation ? relationNamed(item.relation, schemas) : undefined;
          return relation ? [{ item, relation }] : [];
        });
        const match = node.qualifier !== null
          ? items.find(({ item, relation }) => (item.alias ?? relation.name) === node.qualifier!.split('.').pop())
          : items.find(({ relation }) => relation.columns.some((column) => column.name === node.name));
        if (match) {
          found.set(`${match.relation.qualified}.${node.name}`, { relation: match.relation.qualified, column: node.name });
          return;
        }
        if (node.qualifier !== null && select.from.some((item) => item.alias === node.qualifier)) return;
      }
    });
    return [...found.values()];
  };

  /** The row's columns an expression reads: unqualified outside sub-selects, or qualified with the relation's name. */
  const rowColumnsRead = (root: Expr, relation: Relation): string[] => {
    const found = new Set<string>();
    visitNodes(root, (node, ancestors) => {
      if (node.kind !== 'column') return;
      const inSubselect = ancestors.some((ancestor) => ancestor.kind === 'select');
      if (node.qualifier === null ? !inSubselect : node.qualifier.split('.').pop() === relation.name) found.add(node.name);
    });
    return [...found];
  };

  const keyColumnsByRelation = new Map<string, Set<string>>();
  const expressionCache = new Map<string, ExpressionAnalysis>();

  const analyzeText = (relation: Relation, policy: Policy, text: string, clause: Clause, visiting: Set<string>, keyColumns: Set<string>): ExpressionAnalysis => {
    const cacheKey = `${relation.qualified}\u0000${policy.name}\u0000${clause}\u0000${text}\u0000${[...keyColumns].join(',')}`;
    const cached = visiting.size <= 1 ? expressionCache.get(cacheKey) : undefined;
    if (cached) return cached;
    const entry = parsed(text);
    if (!entry.node) {
      return { text, verdict: 'unknown', branches: [], open: [], references: [], calls: [], relations: [], rowColumns: [], columnsRead: [], parseError: entry.error };
    }
    const schemas = [relation.schema, 'public'];
    const root = expand(entry.node, relation.name, schemas);
    const env: Env = {
      scope,
      relation,
      schemas,
      rowNames: new Set([relation.name]),
      aliases: new Map([[relation.name, relation]]),
      keyColumns,
      clause,
      visiting: new Set([...visiting, relation.qualified]),
      references: new Map(),
      membership: null,
    };
    const branches = analyzeExpr(env, root);
    const references = collectReferences(env, root, { relation: relation.qualified, policy: policy.name, clause });
    const open = branches.filter((branch) => isOpenKind(branch.kind));
    const unknown = branches.some((branch) => branch.kind === 'unknown');
    const result: ExpressionAnalysis = {
      text,
      verdict: open.length ? 'open' : unknown ? 'unknown' : 'confined',
      branches,
      open,
      references,
      calls: entry.calls,
      relations: relationsRead(root, schemas),
      rowColumns: rowColumnsRead(entry.node, relation),
      columnsRead: subselectColumnsRead(root, schemas),
      parseError: null,
    };
    if (visiting.size <= 1) expressionCache.set(cacheKey, result);
    return result;
  };

  const noKeys = new Set<string>();
  const keyColumnsOf = (relation: Relation): Set<string> => {
    let columns = keyColumnsByRelation.get(relation.qualified);
    if (columns) return columns;
    columns = new Set();
    keyColumnsByRelation.set(relation.qualified, columns);
    for (const policy of relation.policies) {
      for (const [text, clause] of [[policy.using, 'using'], [policy.withCheck, 'check']] as const) {
        if (!text) continue;
        const analysis = analyzeText(relation, policy, text, clause, new Set(), noKeys);
        for (const reference of analysis.references) {
          if (reference.use.kind === 'equality' && reference.use.relation === relation.qualified && !reference.use.membership) columns.add(reference.use.column);
        }
      }
    }
    return columns;
  };

  const expression = (relation: Relation, policy: Policy, text: string, clause: Clause, visiting: Set<string> = new Set()) =>
    analyzeText(relation, policy, text, clause, visiting, parsed(text).nullTest ? keyColumnsOf(relation) : noKeys);

  const applies = (policy: Policy): boolean => inherited !== null && policy.roles.some((name) => name === 'public' || inherited.has(name));

  const rlsApplies = (relation: Relation): boolean => {
    if (!relation.rlsEnabled || role === null) return false;
    if (roleInfo?.superuser || roleInfo?.bypassRls) return false;
    return relation.rlsForced || !inherited!.has(relation.owner);
  };

  const commandClause = (relation: Relation, command: Command, clause: Clause, visiting: Set<string> = new Set()): CommandClauseAnalysis => {
    const policies = relation.policies.filter((policy) => (policy.command === 'ALL' || policy.command === command) && applies(policy));
    const permissive = policies.filter((policy) => policy.permissive && clauseText(policy, clause) !== null);
    // A restrictive policy without the clause restricts nothing for it.
    const restrictive = policies.filter((policy) => !policy.permissive && clauseText(policy, clause) !== null);
    const restrictiveAnalyses = restrictive.map((policy) => ({ policy, analysis: expression(relation, policy, clauseText(policy, clause)!, clause, visiting) }));
    const fence = restrictiveAnalyses.find((entry) => entry.analysis.verdict === 'confined')?.policy ?? null;
    const open: OpenPath[] = [];
    const unknown: { policy: Policy; branch: Branch }[] = [];
    const published: { policy: Policy; branch: Branch }[] = [];
    if (!fence) {
      for (const policy of permissive) {
        const analysis = expression(relation, policy, clauseText(policy, clause)!, clause, visiting);
        for (const branch of analysis.branches) {
          if (branch.kind === 'unknown') {
            unknown.push({ policy, branch });
            continue;
          }
          if (!isOpenKind(branch.kind)) continue;
          // Rows a tenant published (`or is_public`) are everyone's to read by design; writing them is not.
          if (command === 'SELECT' && clause === 'using' && branch.publicFlags) {
            published.push({ policy, branch });
            continue;
          }
          let kind: OpenKind = branch.kind;
          for (const entry of restrictiveAnalyses) {
            const loose = entry.analysis.branches.filter((candidate) => isOpenKind(candidate.kind) || candidate.kind === 'unknown');
            if (!loose.length) continue;
            const allowed = loose.reduce((best, candidate) => (OPEN_WIDTH[candidate.kind as OpenKind] > OPEN_WIDTH[best.kind as OpenKind] ? candidate : best));
            if (allowed.kind !== 'unknown' && OPEN_WIDTH[allowed.kind as OpenKind] < OPEN_WIDTH[kind]) kind = allowed.kind as OpenKind;
          }
          open.push({ policy, branch, kind, restrictive });
        }
      }
    }
    return { command, clause, policies, fence, open, unknown, published, verdict: open.length ? 'open' : unknown.length ? 'unknown' : 'confined' };
  };

  const confinedReads = new Map<string, boolean>();
  /** True when reading the relation as the role returns only context rows (used for sub-selects in policies). */
  const readsConfined = (relation: Relation, visiting: Set<string>): boolean => {
    const cached = confinedReads.get(relation.qualified);
    if (cached !== undefined) return cached;
    if (visiting.has(relation.qualified) || !rlsApplies(relation)) return false;
    const reads = commandClause(relation, 'SELECT', 'using', visiting);
    // No permissive policy: the role reads nothing, which is confined too.
    // Published rows are other tenants' too: a sub-select over them is not confined.
    const result = reads.open.every((path) => path.kind === 'fail-open' || path.kind === 'escape-setting') && !reads.unknown.length && !reads.published.length;
    if (visiting.size <= 1) confinedReads.set(relation.qualified, result);
    return result;
  };

  const policies: PolicyAnalysis[] = [];
  const contextReferences: ContextReference[] = [];
  for (const relation of catalog.relations) {
    for (const policy of relation.policies) {
      const using = policy.using ? expression(relation, policy, policy.using, 'using') : null;
      const checkText = clauseText(policy, 'check');
      const check = checkText !== null ? expression(relation, policy, checkText, 'check') : null;
      policies.push({ policy, applies: applies(policy), using, check });
      contextReferences.push(...(using?.references ?? []), ...(check?.references ?? []));
    }
  }

  const relations: RelationAnalysis[] = catalog.relations.map((relation) => ({
    relation: relation.qualified,
    rlsApplies: rlsApplies(relation),
    keyColumns: [...keyColumnsOf(relation)],
    commands: relation.rlsEnabled && role !== null ? COMMAND_CLAUSES.map(({ command, clause }) => commandClause(relation, command, clause)) : [],
  }));

  const views: BodyAnalysis[] = catalog.relations
    .filter((relation) => relation.kind === 'view' || relation.kind === 'materialized-view')
    .map((view) => bodyAnalysis(scope, view.qualified, 'view', parseViewDefinition(view), [view.schema, 'public']));
  const functions: BodyAnalysis[] = catalog.functions
    .filter((fn) => fn.language === 'sql' || fn.language === 'plpgsql')
    .map((fn) => bodyAnalysis(scope, fn.signature, 'function', parsedBody(fn), searchSchemas(fn)));

  return { role, policies, relations, views, functions, contextReferences };
}

/** Qualify the row's unqualified columns in a helper's argument, so that inside the helper's sub-selects they stay the outer row. */
function qualifyRow(arg: Expr, rowName: string | null, inSubselect: boolean): Expr {
  if (rowName === null || inSubselect) return arg;
  if (arg.kind === 'column' && arg.qualifier === null) return { ...arg, qualifier: rowName };
  if (arg.kind === 'cast') return { ...arg, arg: qualifyRow(arg.arg, rowName, inSubselect) };
  return arg;
}

function substituteParams(body: Expr, args: Expr[], fn: FunctionInfo): Expr {
  const visit = (node: Expr): Expr => {
    if (node.kind === 'param') {
      const position = Number(node.name.slice(1));
      const arg = args[position - 1];
      if (arg) return arg;
      // A defaulted argument the call left out: its value is a constant chosen by the function.
      if (position <= fn.argumentTypes.length) return { kind: 'literal', value: null, type: 'null' };
    }
    return mapChildren(node, visit);
  };
  return visit(body);
}

// ------------------------------------------------------------------------------------------------------------
// Lookups for consumers

export function relationAnalysis(analysis: Analysis, relation: string): RelationAnalysis | undefined {
  return analysis.relations.find((entry) => entry.relation === relation);
}

export function commandAnalysis(analysis: Analysis, relation: string, command: Command, clause: Clause): CommandClauseAnalysis | undefined {
  return relationAnalysis(analysis, relation)?.commands.find((entry) => entry.command === command && entry.clause === clause);
}

export function policyAnalysis(analysis: Analysis, policy: Policy): PolicyAnalysis | undefined {
  return analysis.policies.find((entry) => entry.policy === policy) ?? analysis.policies.find((entry) => entry.policy.relation === policy.relation && entry.policy.name === policy.name);
}

/** The analysis of a policy's expression for a clause (WITH CHECK falls back to USING). */
export function clauseAnalysis(analysis: Analysis, policy: Policy, clause: Clause): ExpressionAnalysis | null {
  const entry = policyAnalysis(analysis, policy);
  if (!entry) return null;
  return clause === 'using' ? entry.using : entry.check;
}

export function viewAnalysis(analysis: Analysis, view: string): BodyAnalysis | undefined {
  return analysis.views.find((entry) => entry.name === view);
}

export function functionAnalysis(analysis: Analysis, signature: string): BodyAnalysis | undefined {
  return analysis.functions.find((entry) => entry.name === signature);
}

/** Every context reference of the policies on a relation. */
export function relationReferences(analysis: Analysis, relation: string): ContextReference[] {
  return analysis.contextReferences.filter((reference) => reference.relation === relation);
}

/**
 * The types policies read the tenant setting as (`nullif(current_setting('app.tenant', true), '')::integer`,
 * also inside helper functions they call), so that tenant ids are valid for every one of them.
 */
export function settingCasts(analysis: Analysis, setting: string): string[] {
  const types = analysis.contextReferences.filter((reference) => reference.source.kind === 'setting' && reference.source.setting === setting).map((reference) => reference.readAs);
  return [...new Set(types.filter((type): type is string => type !== null))].sort();
}
