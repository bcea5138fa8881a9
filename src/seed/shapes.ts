import { isSequenceDefault } from '../analysis/constraints.js';
import { columnOf } from '../catalog/lookup.js';
import type { Column, ForeignKey, Relation } from '../catalog/types.js';
import { checksOf } from './values.js';

/** A column the seeder sends a value for, and whether its values must differ from row to row. */
export interface ColumnSpec {
  column: Column;
  unique: boolean;
}

/** The largest value of each integer type a sequence-backed key can have: keys the audit gives count down from there. */
export const KEY_LIMITS: Readonly<Record<string, bigint>> = { int2: 32_767n, int4: 2_147_483_647n, int8: 9_223_372_036_854_775_807n };

/** A column a sequence fills (identity, serial, a nextval default). */
export const isSequenceBacked = (column: Column) => column.identity !== null || isSequenceDefault(column.default);

/**
 * Columns the seeder fills: everything except generated columns and sequence-backed keys. Columns with
 * other defaults are filled too, so that a policy reading them (`or published`, `status = 'public'`)
 * meets both kinds of rows; `useDefaults` leaves them to their defaults, which a retry does when a
 * generated value broke a constraint the seeder cannot read.
 */
export function columnsToFill(relation: Relation, forced: Set<string>, useDefaults: boolean): Column[] {
  const keepDefault = defaultsFirst(relation);
  return relation.columns.filter((column) => {
    if (column.generated) return false;
    if (forced.has(column.name)) return true;
    if (column.identity) return false;
    if (column.default !== null && (useDefaults || isSequenceDefault(column.default) || keepDefault.has(column.name))) return false;
    return true;
  });
}

/**
 * Columns with a default that a CHECK the planner cannot read reads (`scopes text[] default '{read}' check
 * (scopes <@ allowed_scopes())`): the default, the application's own value, is tried first.
 */
export function defaultsFirst(relation: Relation): Set<string> {
  const opaque = checksOf(relation).filter((check) => check.alternatives.length > 0 && check.alternatives.every((atoms) => atoms.some((atom) => atom.kind === 'opaque')));
  return new Set(opaque.flatMap((check) => check.columns));
}

export function uniqueKeys(relation: Relation): string[][] {
  const keys: string[][] = [];
  for (const constraint of relation.constraints) {
    if (constraint.kind === 'unique' || constraint.kind === 'primary-key') keys.push(constraint.columns);
  }
  for (const index of relation.indexes) if (index.unique && !index.partial && index.columns.every((column) => column !== null)) keys.push(index.columns as string[]);
  return keys;
}

export function uniqueColumns(relation: Relation): Set<string> {
  const unique = new Set<string>();
  for (const constraint of relation.constraints) {
    if (constraint.kind === 'unique' || constraint.kind === 'primary-key' || constraint.kind === 'exclusion') constraint.columns.forEach((column) => column && unique.add(column));
  }
  for (const index of relation.indexes) if (index.unique) index.columns.forEach((column) => column && unique.add(column));
  return unique;
}

export const nullableKey = (relation: Relation, foreignKey: ForeignKey) =>
  foreignKey.columns.some((column) => !columnOf(relation, column)?.notNull);

/** The type a column's value is cast to when PostgreSQL evaluates a check on candidate rows (domains by their base type). */
export function evaluationType(column: Column): string {
  if (!column.domainChecks.length) return column.type;
  return `${column.baseType}${column.isArray ? '[]' : ''}`;
}

/** Unique keys made of the tenant column and whole foreign keys (a join table's pair, a one-to-one link). */
export function comboKeys(relation: Relation, tenantColumn: string | null): { columns: string[]; foreignKeys: ForeignKey[] }[] {
  const keys: { columns: string[]; foreignKeys: ForeignKey[] }[] = [];
  for (const key of uniqueKeys(relation)) {
    const rest = key.filter((column) => column !== tenantColumn);
    if (!rest.length) continue;
    const foreignKeys = relation.foreignKeys.filter((foreignKey) => foreignKey.references !== relation.qualified && foreignKey.columns.some((column) => rest.includes(column)));
    const covered = new Set(foreignKeys.flatMap((foreignKey) => foreignKey.columns));
    if (foreignKeys.length && rest.every((column) => covered.has(column))) keys.push({ columns: key, foreignKeys });
  }
  return keys;
}

export function selfReferences(relation: Relation): ForeignKey[] {
  return relation.foreignKeys.filter((foreignKey) => foreignKey.references === relation.qualified);
}
