import type { Catalog } from '../catalog/types.js';
import type { AuditSession } from '../target/session.js';

export interface RelationAccess {
  schemaUsage: boolean;
  /** Columns the role may select; all of them when it holds SELECT on the table. */
  selectColumns: string[];
  select: boolean;
  insert: boolean;
  update: boolean;
  delete: boolean;
  truncate: boolean;
}

export type RoleAccess = Map<string, RelationAccess>;

/** What the application role may do with each relation, as PostgreSQL itself answers it. */
export async function roleAccess(session: AuditSession, catalog: Catalog, role: string): Promise<RoleAccess> {
  const oids = catalog.relations.map((relation) => relation.oid);
  const { rows } = await session.query(
    `select c.oid::text as oid,
            has_schema_privilege($1, c.relnamespace, 'USAGE')::text as usage,
            has_table_privilege($1, c.oid, 'SELECT')::text as "select",
            has_table_privilege($1, c.oid, 'INSERT')::text as "insert",
            has_table_privilege($1, c.oid, 'UPDATE')::text as "update",
            has_table_privilege($1, c.oid, 'DELETE')::text as "delete",
            has_table_privilege($1, c.oid, 'TRUNCATE')::text as "truncate",
            case when c.relkind = 'v' then pg_relation_is_updatable(c.oid, false) else 28 end::text as updatable,
            array_to_json(array(select a.attname from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                   and has_column_privilege($1, c.oid, a.attnum, 'SELECT') order by a.attnum))::text as columns
     from pg_class c where c.oid = any($2::oid[])`,
    [role, oids],
  );
  const byOid = new Map(catalog.relations.map((relation) => [String(relation.oid), relation.qualified]));
  const access: RoleAccess = new Map();
  for (const row of rows) {
    const usage = row.usage === 'true';
    const columns = JSON.parse(row.columns ?? '[]') as string[];
    // A view takes a write only when it is auto-updatable (or has INSTEAD triggers or rules) for that command.
    const updatable = Number(row.updatable ?? 0);
    access.set(byOid.get(row.oid!)!, {
      schemaUsage: usage,
      selectColumns: usage ? columns : [],
      select: usage && row.select === 'true',
      insert: usage && row.insert === 'true' && (updatable & 8) !== 0,
      update: usage && row.update === 'true' && (updatable & 4) !== 0,
      delete: usage && row.delete === 'true' && (updatable & 16) !== 0,
      truncate: usage && row.truncate === 'true',
    });
  }
  return access;
}
