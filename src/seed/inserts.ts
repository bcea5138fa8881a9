import type { Column, Relation } from '../catalog/types.js';
import type { RawRow } from '../target/session.js';
import { ident, relationIdent, textArrayLiteral } from '../target/sql.js';
import type { Tenant } from './ledger.js';
import type { SeedResult } from './outcome.js';
import type { Partitions } from './partitions.js';
import { uniqueColumns, type ColumnSpec } from './shapes.js';
import type { SeedState } from './state.js';
import { storedText, type TimeStyle } from './stored-text.js';

function insertSql(relation: Relation, columns: ColumnSpec[], returned: Column[], withTableoid: boolean): string {
  const overriding = columns.some(({ column }) => column.identity === 'always') ? ' overriding system value' : '';
  const aliases = columns.map((_, index) => `c${index + 1}`);
  const returning = [...returned.map((column) => `${ident(column.name)}::text as ${ident(column.name)}`), ...(withTableoid ? ['tableoid::int as "rls audit tableoid"'] : [])];
  return (
    `insert into ${relationIdent(relation)} (${columns.map(({ column }) => ident(column.name)).join(', ')})${overriding} ` +
    `select ${columns.map(({ column }, index) => `u.${aliases[index]}::${column.type}`).join(', ')} ` +
    `from unnest(${columns.map((_, index) => `$${index + 1}::text[]`).join(', ')}) as u(${aliases.join(', ')}) ` +
    `returning ${returning.length ? returning.join(', ') : '1 as "rls audit row"'}`
  );
}

/** The inserts of the seeder, and the rows they put in, recorded in the ledger. */
export class Inserts {
  private readonly retained = new Map<string, Set<string>>();

  constructor(
    private readonly state: SeedState,
    private readonly partitions: Partitions,
    /** How the session prints dates and times, for storedText. */
    private readonly timeStyle: TimeStyle,
  ) {}

  /**
   * Insert rows in one statement and return them as stored, every column as text. Only the columns whose
   * stored text can differ from what was sent come back from the server (defaults, identities, types whose
   * output is not their input, and every column of a relation with triggers); the rest, about two thirds
   * of what seeding used to read back, are taken from the rows sent.
   */
  async insert(relation: Relation, columns: ColumnSpec[], rows: (string | null)[][]): Promise<RawRow[]> {
    // Not behind an insert sent ahead that may still fail: its failure would abort this one.
    await this.state.session.settled();
    return this.send(relation, columns, rows)();
  }

  /** The insert of `insert`, sent now, in a savepoint of its own; the returned reader waits for the rows. */
  send(relation: Relation, columns: ColumnSpec[], rows: (string | null)[][]): () => Promise<RawRow[]> {
    this.state.statements += 1;
    const triggered = this.state.catalog.triggers.some((trigger) => trigger.enabled && trigger.relation === relation.qualified);
    const sent = new Map(columns.map(({ column }, index) => [column.name, index]));
    // Per column of the relation: its stored text of every row when known from the values sent, else null (read back).
    const known = relation.columns.map((column) => {
      const at = sent.get(column.name);
      if (triggered || at === undefined || column.isArray) return null;
      const texts: (string | null)[] = [];
      for (const row of rows) {
        const value = row[at] ?? null;
        const text = value === null ? null : storedText(column.baseType, value, this.timeStyle);
        if (text === undefined) return null;
        texts.push(text);
      }
      return texts;
    });
    const returned = relation.columns.filter((_, position) => !known[position]);
    const sql = insertSql(relation, columns, returned, relation.kind === 'partitioned-table');
    const params = columns.map((_, index) => textArrayLiteral(rows.map((row) => row[index] ?? null)));
    const read = this.state.session.sendKept(sql, params);
    return async () => {
      const result = await read();
      if (returned.length === relation.columns.length) return result.rows;
      return result.rows.map((stored, index) => {
        const values: RawRow = {};
        relation.columns.forEach((column, position) => (values[column.name] = known[position] ? known[position]![index]! : stored[column.name] ?? null));
        if ('rls audit tableoid' in stored) values['rls audit tableoid'] = stored['rls audit tableoid']!;
        return values;
      });
    };
  }

  /** Put rows that went in for the tenant (null: shared rows) into the ledger, and count them in their partitions. */
  record(relation: Relation, tenant: Tenant | null, inserted: RawRow[], result: SeedResult): void {
    const rows = inserted.map((values) => {
      const tableoid = values['rls audit tableoid'];
      if (tableoid !== undefined) {
        delete values['rls audit tableoid'];
        this.partitions.countRow(tableoid, tenant);
      }
      return { tenant: tenant?.id ?? null, values };
    });
    // Rows of a table without a primary key are told apart by all their values (adopt): keep them whole.
    this.state.ledger.add(relation.qualified, relation.primaryKey, rows, relation.primaryKey?.length ? this.retainedColumns(relation) : undefined);
    result.rows += rows.length;
  }

  /** Columns the ledger keeps for every row: keys, unique columns, tenant columns, columns other tables reference. */
  private retainedColumns(relation: Relation): Set<string> {
    let retained = this.retained.get(relation.qualified);
    if (!retained) {
      retained = new Set([...(relation.primaryKey ?? []), ...uniqueColumns(relation), ...this.state.plan.tenantColumns]);
      const tenantColumn = this.state.plans.get(relation.qualified)?.tenantColumn;
      if (tenantColumn) retained.add(tenantColumn);
      for (const other of this.state.catalog.relations) {
        for (const foreignKey of other.foreignKeys) if (foreignKey.references === relation.qualified) foreignKey.referencedColumns.forEach((column) => retained!.add(column));
      }
      this.retained.set(relation.qualified, retained);
    }
    return retained;
  }
}
