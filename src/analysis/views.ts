/**
 * How the rows and columns of a simple view map onto the one table it reads, from the parse tree of its
 * definition (libpg-query): `select t.id as todo_id, t.title from data.todo t` shows data.todo's rows, its
 * column todo_id is data.todo.id. Used to count a view's own rows against the table's seeded rows, and to
 * write through an updatable view by key when it hides the tenant or owner column.
 */
import type { Relation } from '../catalog/types.js';
import { ParseError, parseStatements } from './parse.js';

export interface ViewMapping {
  /** Qualified name of the table the view reads. */
  base: string;
  /** View column -> table column, for the view's columns that are plain columns of the table. */
  columns: Map<string, string>;
  /** The view shows every row of the table (no WHERE, DISTINCT, GROUP BY, LIMIT, set operation or join). */
  allRows: boolean;
  /** PostgreSQL can write through it (auto-updatable: one table, no DISTINCT, GROUP BY, HAVING, LIMIT or OFFSET). */
  updatable: boolean;
}

type Raw = Record<string, unknown>;

function body(node: unknown, type: string): Raw | null {
  return node && typeof node === 'object' && type in (node as Raw) ? ((node as Raw)[type] as Raw) : null;
}

function strings(list: unknown): string[] {
  return (Array.isArray(list) ? list : []).map((item) => String((body(item, 'String')?.sval as string | undefined) ?? '*'));
}

const mappings = new WeakMap<Relation, ViewMapping | null>();

/** The mapping of a view that reads exactly one table, or null (several relations, a sub-select, a parse error). */
export function viewMapping(view: Relation): ViewMapping | null {
  if (mappings.has(view)) return mappings.get(view)!;
  const mapping = computeMapping(view);
  mappings.set(view, mapping);
  return mapping;
}

function computeMapping(view: Relation): ViewMapping | null {
  if (view.kind !== 'view' || !view.viewDefinition || view.dependsOn.length !== 1) return null;
  let statements;
  try {
    statements = parseStatements(view.viewDefinition);
  } catch (error) {
    if (error instanceof ParseError) return null;
    throw error;
  }
  const select = statements.length === 1 ? body(statements[0]!.stmt, 'SelectStmt') : null;
  if (!select || (select.op && select.op !== 'SETOP_NONE') || select.withClause) return null;
  const from = Array.isArray(select.fromClause) ? select.fromClause : [];
  const range = from.length === 1 ? body(from[0], 'RangeVar') : null;
  if (!range) return null;
  const base = view.dependsOn[0]!;
  const [schema, name] = base.split('.') as [string, string];
  if (range.relname !== name || (range.schemaname !== undefined && range.schemaname !== schema)) return null;
  const alias = (body(range.alias, 'Alias')?.aliasname as string | undefined) ?? (range.alias as Raw | undefined)?.aliasname;
  const qualifiers = new Set([name, ...(typeof alias === 'string' ? [alias] : [])]);
  const targets = Array.isArray(select.targetList) ? select.targetList : [];
  const columns = new Map<string, string>();
  if (targets.length === view.columns.length) {
    targets.forEach((target, index) => {
      const value = body(body(target, 'ResTarget')?.val, 'ColumnRef');
      if (!value) return;
      const fields = strings(value.fields);
      const column = fields[fields.length - 1]!;
      if (column === '*' || (fields.length > 1 && !qualifiers.has(fields[fields.length - 2]!))) return;
      columns.set(view.columns[index]!.name, column);
    });
  }
  const updatable = !select.distinctClause && !select.groupClause && !select.havingClause && !select.limitCount && !select.limitOffset;
  const allRows = updatable && !select.whereClause && range.inh !== false;
  return { base, columns, allRows, updatable };
}
