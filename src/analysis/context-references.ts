/**
 * Context references: how the classifier records the use of each reference it reads (equality with a row column,
 * an escape, a fail-open test), and the collection of every reference under an expression with its setting details.
 */
import { childrenOf, render, type Expr, type Select } from './expression.js';
import type { Clause, ContextReference, ContextSource, ContextUse } from './model.js';
import type { Env } from './classify.js';
import { claimPath, PASS_THROUGH, referenceKey, referenceSource, settingCall, stringValue, type Value } from './value-sources.js';

const TEXT_TYPES = new Set(['text', 'character varying', 'varchar', 'character', 'char', 'bpchar', 'name', '"char"', 'citext', 'unknown']);

/** Record how the reference nodes of a value are used (first use wins: a node is classified the same way each time). */
export function use(env: Env, nodes: Expr[], how: ContextUse): void {
  for (const node of nodes) {
    if (env.references.has(node)) continue;
    const source = sourceOfValueNode(env, node);
    if (source) env.references.set(node, { source, via: null, use: how });
  }
}

function sourceOfValueNode(env: Env, node: Expr): ContextSource | null {
  const direct = referenceSource(env.scope, node, env.schemas);
  if (direct) return direct;
  const claim = claimPath(node);
  if (claim) {
    const base = referenceSource(env.scope, claim.base, env.schemas) ?? inlinedSessionFunction(env, claim.base);
    if (base?.kind === 'setting') return { kind: 'jwt-claim', setting: base.setting, function: null, path: claim.path };
    if (base?.kind === 'function') return { kind: 'jwt-claim', setting: null, function: base.function, path: claim.path };
    if (base) return base;
  }
  return null;
}

/**
 * A session function without arguments that the analysis inlined (`auth.jwt()`, whose body reads request.jwt.claims):
 * the claims a JSON operator reads from it are that function's claims (`auth.jwt() -> 'user_metadata' ->> 'org_id'`).
 */
function inlinedSessionFunction(env: Env, node: Expr): ContextSource | null {
  if (node.kind !== 'inlined' || node.call.kind !== 'call' || node.call.args.length) return null;
  const fn = env.scope.functionNamed(node.call.name, 0, env.schemas);
  return fn && env.scope.readsSession(fn) ? { kind: 'function', function: node.call.name } : null;
}

export function settingNames(env: Env, nodes: Expr[]): string[] {
  const names = new Set<string>();
  for (const node of nodes) {
    const source = sourceOfValueNode(env, node);
    if (source?.kind === 'setting' || (source?.kind === 'jwt-claim' && source.setting)) names.add(source.setting!);
    else if (source?.kind === 'jwt-claim' && source.function) names.add(`${source.function}()`);
    else if (source?.kind === 'function') names.add(`${source.function}()`);
  }
  return [...names];
}

export function equalityUse(env: Env, value: Value, context?: Value): ContextUse {
  const relation = value.kind === 'column' ? (value.relation ?? env.relation) : env.relation;
  const column = value.kind === 'column' ? value.name : '(expression)';
  const through = context && (context.kind === 'context' || context.kind === 'role') ? context.through : undefined;
  return { kind: 'equality', relation: relation?.qualified ?? '(unknown)', column, membership: env.membership, ...(through ? { through } : {}) };
}

interface SettingShape {
  missingOk: boolean | null;
  nullif: boolean;
  castTo: string | null;
  readAs: string | null;
}

/** missing_ok, the nullif(…, '') guard and the non-text cast of a setting reference, from its ancestors. */
export function settingShape(node: Expr, ancestors: (Expr | Select)[]): SettingShape {
  const call = settingCall(node);
  let nullif = false;
  let castTo: string | null = null;
  let readAs: string | null = null;
  let child: Expr | Select = node;
  for (let index = ancestors.length - 1; index >= 0; index -= 1) {
    const parent = ancestors[index]!;
    if (parent.kind === 'cast') {
      if (!TEXT_TYPES.has(parent.type)) {
        if (!nullif) castTo = parent.type;
        readAs = parent.type;
        break;
      }
    } else if (parent.kind === 'call' && parent.name === 'nullif') {
      if (parent.args[0] === child && stringValue(parent.args[1]) === '') nullif = true;
      else break;
    } else if (parent.kind === 'call' && (PASS_THROUGH.has(parent.name) || parent.name === 'coalesce')) {
      // coalesce(setting, ''), lower(setting): the empty string passes through.
    } else if (parent.kind === 'select' || (parent.kind === 'subquery' && !parent.subquery.from.length)) {
      // ( SELECT value AS "nullif") — the initplan form.
    } else {
      break;
    }
    child = parent;
  }
  return { missingOk: call ? call.missingOk : null, nullif, castTo, readAs };
}

/**
 * Every context reference under `root` with its use: the uses recorded while classifying, `other` for the rest.
 * Setting details (missing_ok, nullif, cast) come from the reference's place in the tree.
 */
export function collectReferences(env: Env, root: Expr, where: { relation: string; policy: string; clause: Clause }): ContextReference[] {
  const out: ContextReference[] = [];
  const seen = new Set<Expr>();
  const visit = (node: Expr | Select, ancestors: (Expr | Select)[], via: string | null) => {
    if (node.kind !== 'select' && !seen.has(node)) {
      const recorded = env.references.get(node);
      const source = recorded?.source ?? (node.kind === 'op' ? null : referenceSource(env.scope, node, env.schemas));
      if (source) {
        seen.add(node);
        // The setting call itself, for claims read through ->> from a setting.
        let settingNode: Expr | null = settingCall(node) ? node : null;
        let settingAncestors = ancestors;
        if (!settingNode && node.kind === 'op') {
          const claim = claimPath(node);
          if (claim && settingCall(claim.base)) {
            settingNode = claim.base;
            settingAncestors = [...ancestors, node];
          }
        }
        const shape = settingNode ? settingShape(settingNode, settingAncestors) : settingShape(node, ancestors);
        out.push({
          key: referenceKey(source),
          source,
          text: render(node),
          missingOk: settingNode ? (settingCall(settingNode)?.missingOk ?? null) : null,
          nullif: shape.nullif,
          castTo: settingNode ? shape.castTo : null,
          readAs: settingNode ? shape.readAs : null,
          via,
          use: recorded?.use ?? { kind: 'other' },
          ...where,
        });
        if (recorded) return;
      }
    }
    const next = [...ancestors, node];
    if (node.kind === 'inlined') {
      visit(node.body, next, node.function);
      return;
    }
    for (const { node: child, ancestors: childAncestors } of directChildren(node, next)) visit(child, childAncestors, via);
  };
  visit(root, [], null);
  return out;
}

function directChildren(node: Expr | Select, ancestors: (Expr | Select)[]): { node: Expr | Select; ancestors: (Expr | Select)[] }[] {
  return childrenOf(node).map((child) => ({ node: child, ancestors }));
}
