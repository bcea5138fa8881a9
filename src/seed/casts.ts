/**
 * The types policies cast the tenant setting to (`current_setting('app.tenant')::int`), read from the parse
 * tree, so that tenant ids are valid for every such cast. A small reader until the analysis model exposes
 * the casts on its context references; then this is replaced by a look-up there.
 */
import { castTypeName, constantText } from '../analysis/constraints.js';
import { parseExpression } from '../analysis/parse.js';
import type { Catalog } from '../catalog/types.js';

type Obj = Record<string, unknown>;

/** Whether a node is `current_setting('<setting>' [, missing_ok])`, possibly inside nullif/coalesce/btrim. */
function readsSetting(node: unknown, setting: string): boolean {
  if (!node || typeof node !== 'object') return false;
  const [key] = Object.keys(node);
  const value = (node as Obj)[key!] as Obj;
  if (key === 'TypeCast') return readsSetting(value.arg, setting);
  // NULLIF(current_setting(...), '') and COALESCE(current_setting(...), ...)
  if (key === 'A_Expr' && value.kind === 'AEXPR_NULLIF') return readsSetting(value.lexpr, setting);
  if (key === 'CoalesceExpr') return readsSetting(((value.args as unknown[] | undefined) ?? [])[0], setting);
  if (key !== 'FuncCall') return false;
  const names = ((value.funcname as { String?: { sval?: string } }[] | undefined) ?? []).map((part) => part.String?.sval ?? '');
  const name = names[names.length - 1]?.toLowerCase();
  const args = (value.args as unknown[] | undefined) ?? [];
  if (name === 'current_setting') return constantText(args[0]) === setting;
  if (name === 'nullif' || name === 'coalesce' || name === 'btrim' || name === 'trim') return readsSetting(args[0], setting);
  return false;
}

function collectCasts(node: unknown, setting: string, found: Set<string>): void {
  if (Array.isArray(node)) {
    for (const item of node) collectCasts(item, setting, found);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const [key] = Object.keys(node);
  if (key === 'TypeCast' && readsSetting(((node as Obj).TypeCast as Obj).arg, setting)) {
    const type = castTypeName(node);
    if (type) found.add(type);
  }
  for (const child of Object.values(node as Obj)) if (child && typeof child === 'object') collectCasts(child, setting, found);
}

/** Type names (`int4`, `uuid`, ...) the policies cast the tenant setting to. The parser must be loaded. */
export function settingCasts(catalog: Catalog, setting: string): string[] {
  const found = new Set<string>();
  for (const relation of catalog.relations) {
    for (const policy of relation.policies) {
      for (const expression of [policy.using, policy.withCheck]) {
        if (!expression) continue;
        try {
          collectCasts(parseExpression(expression), setting, found);
        } catch {
          // unreadable policy text: the analysis reports it; ids keep the key's type
        }
      }
    }
  }
  return [...found].sort();
}
