import { readPartitionBound, readPartitionKey, type Atom } from '../analysis/constraints.js';
import type { Catalog, Relation } from '../catalog/types.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { Tenant } from './ledger.js';

export interface Leaf {
  relation: Relation;
  /** Conditions the partition's bounds put on the key columns. */
  atoms: Atom[];
  /** Bounds that could be read (range, list, default); hash partitions are reached by routing. */
  bounded: boolean;
  keyColumns: string[];
}

/** Conditions a partition bound puts on the key columns of its parent. */
function boundAtoms(parent: Relation, leaf: Relation, siblings: Relation[]): { atoms: Atom[]; bounded: boolean; keyColumns: string[] } {
  const key = parent.partitionKey ? readPartitionKey(parent.partitionKey) : null;
  const bound = leaf.partitionBound ? readPartitionBound(leaf.partitionBound) : null;
  if (!key || !bound) return { atoms: [], bounded: false, keyColumns: [] };
  const keyColumns = key.columns.filter((column): column is string => column !== null);
  const atoms: Atom[] = [];
  if (bound.kind === 'range') {
    for (let index = 0; index < key.columns.length; index += 1) {
      const column = key.columns[index];
      const from = bound.from[index];
      const to = bound.to[index];
      if (!column || !from || !to) break;
      const low = 'value' in from && from.value !== null ? from.value : null;
      const high = 'value' in to && to.value !== null ? to.value : null;
      if (low !== null && high !== null && low === high) {
        atoms.push({ kind: 'compare', column, op: '=', value: low });
        continue;
      }
      if (low !== null) atoms.push({ kind: 'compare', column, op: '>=', value: low });
      if (high !== null) atoms.push({ kind: 'compare', column, op: '<', value: high });
      break;
    }
    return { atoms, bounded: true, keyColumns };
  }
  if (bound.kind === 'list') {
    const column = key.columns[0];
    if (!column) return { atoms, bounded: false, keyColumns };
    const values = bound.values.filter((value): value is string => value !== null);
    atoms.push(values.length ? { kind: 'in', column, values, negated: false } : { kind: 'null', column, isNull: true });
    return { atoms, bounded: true, keyColumns };
  }
  if (bound.kind === 'default') {
    const others = siblings.filter((sibling) => sibling !== leaf).map((sibling) => (sibling.partitionBound ? readPartitionBound(sibling.partitionBound) : null));
    const column = key.columns[0];
    if (!column) return { atoms, bounded: false, keyColumns };
    if (key.strategy === 'list') {
      atoms.push({ kind: 'in', column, values: others.flatMap((other) => (other?.kind === 'list' ? other.values.filter((value): value is string => value !== null) : [])), negated: true });
      return { atoms, bounded: true, keyColumns };
    }
    if (key.strategy === 'range') {
      const uppers = others.map((other) => (other?.kind === 'range' ? other.to[0] : undefined));
      if (uppers.every((upper) => upper && 'value' in upper && upper.value !== null)) {
        const values = uppers.map((upper) => (upper as { value: string }).value);
        // Past the highest upper bound: compared as numbers or dates by the planner.
        for (const value of values) atoms.push({ kind: 'compare', column, op: '>=', value });
        return { atoms, bounded: true, keyColumns };
      }
    }
    return { atoms, bounded: false, keyColumns };
  }
  return { atoms, bounded: false, keyColumns };
}

/** The leaf partitions of a partitioned table, with the conditions their bounds (at every level) put on a row. */
export function partitionBounds(catalog: Catalog, relation: Relation): Leaf[] {
  if (relation.kind !== 'partitioned-table') return [];
  const walk = (parent: Relation, inherited: Atom[], bounded: boolean, keys: string[]): Leaf[] => {
    const children = catalog.relations.filter((candidate) => candidate.partitionOf === parent.qualified);
    return children.flatMap((child) => {
      const bound = boundAtoms(parent, child, children);
      const atoms = [...inherited, ...bound.atoms];
      const keyColumns = [...keys, ...bound.keyColumns];
      return child.kind === 'partitioned-table' ? walk(child, atoms, bounded && bound.bounded, keyColumns) : [{ relation: child, atoms, bounded: bounded && bound.bounded, keyColumns }];
    });
  };
  return walk(relation, [], true, []);
}

/** Why a tenant can have no row in a leaf: its key is the tenant column and the tenant falls elsewhere. */
export function leafRefuses(leaf: Leaf, relationPlan: RelationPlan, tenant: Tenant): string | null {
  const tenantColumn = relationPlan.tenantColumn;
  if (!tenantColumn || !leaf.keyColumns.includes(tenantColumn)) return null;
  if (leaf.keyColumns.every((column) => column === tenantColumn) && !leaf.bounded) return `partitioned by the tenant column ${tenantColumn} (hash): each tenant's rows belong to one partition`;
  for (const atom of leaf.atoms) {
    if (atom.kind === 'in' && atom.column === tenantColumn && atom.values.includes(tenant.id) === atom.negated) return `partitioned by the tenant column ${tenantColumn}: ${tenant.label} belongs to another partition`;
    if (atom.kind === 'compare' && atom.column === tenantColumn) {
      const id = Number(tenant.id);
      const bound = Number(atom.value);
      if (Number.isFinite(id) && Number.isFinite(bound) && !{ '=': id === bound, '<>': id !== bound, '<': id < bound, '<=': id <= bound, '>': id > bound, '>=': id >= bound }[atom.op]) {
        return `partitioned by the tenant column ${tenantColumn}: ${tenant.label} belongs to another partition`;
      }
    }
  }
  return null;
}

/** The partitions of the seeded relations, and the rows each tenant has in each leaf. */
export class Partitions {
  private readonly byOid: Map<number, Relation>;
  private readonly leafCache = new Map<string, Leaf[]>();
  /** Rows per leaf partition and tenant id. */
  private readonly leafCounts = new Map<string, Map<string, number>>();

  constructor(private readonly catalog: Catalog) {
    this.byOid = new Map(catalog.relations.map((relation) => [relation.oid, relation]));
  }

  leavesOf(name: string): Relation[] {
    const children = this.catalog.relations.filter((relation) => relation.partitionOf === name);
    return children.flatMap((child) => (child.kind === 'partitioned-table' ? this.leavesOf(child.qualified) : [child]));
  }

  /** The leaf partitions of a partitioned table, with the conditions their bounds (at every level) put on a row. */
  leaves(relation: Relation): Leaf[] {
    if (relation.kind !== 'partitioned-table') return [];
    const cached = this.leafCache.get(relation.qualified);
    if (cached) return cached;
    const leaves = partitionBounds(this.catalog, relation);
    this.leafCache.set(relation.qualified, leaves);
    return leaves;
  }

  /** Count a row of `tenant` that went into the relation of oid `tableoid` (as the insert returned it). */
  countRow(tableoid: string | null, tenant: Tenant | null): void {
    const leaf = this.byOid.get(Number(tableoid));
    if (leaf && tenant) {
      const counts = this.leafCounts.get(leaf.qualified) ?? new Map<string, number>();
      counts.set(tenant.id, (counts.get(tenant.id) ?? 0) + 1);
      this.leafCounts.set(leaf.qualified, counts);
    }
  }

  /** Rows of the tenant counted in a leaf. */
  rows(leaf: string, tenant: string): number {
    return this.leafCounts.get(leaf)?.get(tenant) ?? 0;
  }

  /** The leaves that have no row of the tenant yet although they could. */
  missing(leaves: Leaf[], relationPlan: RelationPlan, tenant: Tenant): Leaf[] {
    return leaves.filter((leaf) => !this.leafCounts.get(leaf.relation.qualified)?.get(tenant.id) && !leafRefuses(leaf, relationPlan, tenant));
  }
}
