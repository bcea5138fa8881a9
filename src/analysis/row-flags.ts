/** A row's own visibility flag: a condition that admits rows by a flag of theirs (`is_public`, `visibility = 'public'`), not by the tenant. */
import type { Expr } from './expression.js';
import type { RowFlag } from './model.js';
import type { Env } from './classify.js';
import { columnRelation, isRowColumn } from './value-sources.js';
import { columnOf } from '../catalog/lookup.js';

const PUBLIC_FLAG = /(^|_)(public|published|shared|listed|global)$/i;
const PRIVATE_FLAG = /(^|_)(private|unlisted|hidden|secret)$/i;
const VISIBILITY_COLUMN = /(^|_)(visibility|privacy|access|audience|sharing)$/i;
const PUBLIC_VALUE = /^(public|everyone|all|global|shared)$/i;

/** The row's column a node reads (through casts), with its catalog column, or null. */
function flagColumn(env: Env, node: Expr): { name: string; type: string } | null {
  const inner = node.kind === 'cast' ? node.arg : node;
  if (inner.kind !== 'column' || !isRowColumn(env, inner)) return null;
  const column = columnOf(columnRelation(env, inner), inner.name);
  return column ? { name: column.name, type: column.baseType } : null;
}

function literalOf(node: Expr): Extract<Expr, { kind: 'literal' }> | null {
  const inner = node.kind === 'cast' ? node.arg : node;
  return inner.kind === 'literal' && inner.value !== null ? inner : null;
}

/**
 * A condition that admits a row by a visibility flag of its own: a boolean column named like `is_public` that is
 * true, one named like `private` that is false, or a column named like `visibility` equal to `'public'`.
 */
export function rowFlag(env: Env, node: Expr): RowFlag | null {
  const boolean = (column: { name: string; type: string } | null, value: boolean): RowFlag | null => {
    if (!column || column.type !== 'bool') return null;
    if (value && PUBLIC_FLAG.test(column.name)) return { column: column.name, value: 'true' };
    if (!value && PRIVATE_FLAG.test(column.name)) return { column: column.name, value: 'false' };
    return null;
  };
  switch (node.kind) {
    case 'column':
      return boolean(flagColumn(env, node), true);
    case 'not':
      return boolean(flagColumn(env, node.arg), false);
    case 'bool-test':
      return node.test === 'TRUE' ? boolean(flagColumn(env, node.arg), true) : node.test === 'FALSE' ? boolean(flagColumn(env, node.arg), false) : null;
    case 'op': {
      if (node.op !== '=' || !node.left) return null;
      for (const [columnNode, valueNode] of [[node.left, node.right], [node.right, node.left]] as const) {
        const column = flagColumn(env, columnNode);
        const literal = literalOf(valueNode);
        if (!column || !literal) continue;
        if (literal.type === 'boolean') return boolean(column, literal.value === 'true');
        if (literal.type === 'string' && VISIBILITY_COLUMN.test(column.name) && PUBLIC_VALUE.test(literal.value!)) return { column: column.name, value: literal.value! };
      }
      return null;
    }
    default:
      return null;
  }
}
