import type { Catalog, Column, Constraint, Relation } from './types.js';

/**
 * The catalog's lookups by name: every reader of a relation or a column by its name goes through here, on an
 * index built once per catalog (rebuilt when its list of relations is replaced or grows).
 */
interface RelationIndex {
  relations: readonly Relation[];
  size: number;
  byQualified: Map<string, Relation>;
  byName: Map<string, Relation[]>;
}

const INDEXES = new WeakMap<Catalog, RelationIndex>();

function indexOf(catalog: Pick<Catalog, 'relations'>): RelationIndex {
  const cached = INDEXES.get(catalog as Catalog);
  if (cached && cached.relations === catalog.relations && cached.size === catalog.relations.length) return cached;
  const byQualified = new Map<string, Relation>();
  const byName = new Map<string, Relation[]>();
  for (const relation of catalog.relations) {
    if (!byQualified.has(relation.qualified)) byQualified.set(relation.qualified, relation);
    const same = byName.get(relation.name);
    if (same) same.push(relation);
    else byName.set(relation.name, [relation]);
  }
  const index = { relations: catalog.relations, size: catalog.relations.length, byQualified, byName };
  INDEXES.set(catalog as Catalog, index);
  return index;
}

/** The relation of this qualified name (`schema.name`, as `Relation.qualified` spells it). */
export function relationOf(catalog: Pick<Catalog, 'relations'>, qualified: string): Relation | undefined {
  return indexOf(catalog).byQualified.get(qualified);
}

/** The relation of this qualified name, which the caller knows is in the catalog (a name taken from it or from the plan). */
export function requireRelation(catalog: Pick<Catalog, 'relations'>, qualified: string): Relation {
  const relation = relationOf(catalog, qualified);
  if (!relation) throw new Error(`the catalog has no relation ${qualified}`);
  return relation;
}

/** Look up a relation by qualified name, or by bare name when it is unambiguous. */
export function findRelation(catalog: Pick<Catalog, 'relations'>, name: string): Relation | undefined {
  const index = indexOf(catalog);
  const exact = index.byQualified.get(name);
  if (exact) return exact;
  const bare = index.byName.get(name) ?? [];
  return bare.length === 1 ? bare[0] : undefined;
}

/** A relation's column by name (undefined for a relation the catalog does not have). */
export function columnOf(relation: Pick<Relation, 'columns'> | null | undefined, name: string): Column | undefined {
  return relation?.columns.find((column) => column.name === name);
}

/** A relation's column by name, which the caller knows it has (a key or tenant column read from the catalog or the plan). */
export function requireColumn(relation: Pick<Relation, 'columns' | 'qualified'>, name: string): Column {
  const column = columnOf(relation, name);
  if (!column) throw new Error(`${relation.qualified} has no column ${name}`);
  return column;
}

/** The type of a relation's column as format_type prints it, or undefined when the relation or column is unknown. */
export function columnType(relation: Pick<Relation, 'columns'> | undefined, name: string): string | undefined {
  return columnOf(relation, name)?.type;
}

/** The column of the relation's single-column primary key, else of its first single-column unique constraint. */
export function singleKeyColumn(relation: Relation): Column | undefined {
  if (relation.primaryKey?.length === 1) return columnOf(relation, relation.primaryKey[0]!);
  const unique = relation.constraints.find((constraint): constraint is Exclude<Constraint, { kind: 'exclusion' }> => constraint.kind === 'unique' && constraint.columns.length === 1);
  return unique ? columnOf(relation, unique.columns[0]!) : undefined;
}
