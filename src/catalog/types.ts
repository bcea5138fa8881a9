export type RelationKind = 'table' | 'partitioned-table' | 'view' | 'materialized-view' | 'foreign-table';
export type PolicyCommand = 'ALL' | 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

export interface Column {
  name: string;
  /** format_type() text, e.g. `character varying(40)`, `integer[]`, `public.status`. */
  type: string;
  /** Base type name after resolving domains and arrays, e.g. `varchar`, `int4`, `uuid`, `status`. */
  baseType: string;
  /** pg_type.typcategory of the base type (N numeric, S string, D date/time, B boolean, U user, E enum, ...). */
  category: string;
  isArray: boolean;
  notNull: boolean;
  default: string | null;
  identity: 'always' | 'by-default' | null;
  generated: boolean;
  /** Labels when the base type is an enum. */
  enumValues: string[] | null;
  /** Character length limit (varchar(n), char(n)). */
  maxLength: number | null;
  /** Numeric precision and scale for numeric(p, s). */
  numericPrecision: number | null;
  numericScale: number | null;
  /** CHECK constraints of a domain type, as pg_get_constraintdef text with VALUE replaced by the column name. */
  domainChecks: string[];
}

/** A constraint; only an exclusion constraint's elements may be expressions. */
export type Constraint =
  | { name: string; kind: 'primary-key' | 'unique' | 'foreign-key' | 'check'; columns: string[]; definition: string }
  | {
      name: string;
      kind: 'exclusion';
      /** Key columns in order; null for an expression element (`tstzrange(starts, ends) with &&`). */
      columns: (string | null)[];
      definition: string;
    };

export interface ForeignKey {
  name: string;
  columns: string[];
  /** Qualified name of the referenced relation. */
  references: string;
  referencedColumns: string[];
  definition: string;
  /** DEFERRABLE: may be checked at the end of the transaction (SET CONSTRAINTS ... DEFERRED). */
  deferrable: boolean;
}

export interface Index {
  name: string;
  /** Key columns in order; null for an expression. */
  columns: (string | null)[];
  unique: boolean;
  primary: boolean;
  partial: boolean;
  /**
   * pg_get_indexdef text of a unique index that backs no constraint, a partial index or an expression index; null for
   * the others (a constraint's index is described by the constraint), whose text no check reads.
   */
  definition: string | null;
  /** Every column the index names: its key columns, and those in its expressions and predicate (read from `definition` with the parser). */
  mentions: string[];
}

export interface Policy {
  name: string;
  /** Qualified name of the relation. */
  relation: string;
  command: PolicyCommand;
  permissive: boolean;
  /** Role names; `public` means every role. */
  roles: string[];
  using: string | null;
  withCheck: string | null;
}

export interface Grant {
  grantee: string;
  privilege: string;
}

export interface Relation {
  oid: number;
  schema: string;
  name: string;
  /** schema.name, unquoted: how findings and reports name the relation. */
  qualified: string;
  kind: RelationKind;
  owner: string;
  rlsEnabled: boolean;
  rlsForced: boolean;
  /** Parent when this is a partition. */
  partitionOf: string | null;
  /** A partition's bound as pg_get_expr(relpartbound) prints it, e.g. `FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`. */
  partitionBound: string | null;
  /** A partitioned table's key as pg_get_partkeydef prints it, e.g. `RANGE (created_at)`. */
  partitionKey: string | null;
  /** Parents by classic inheritance (not partitioning). */
  inheritsFrom: string[];
  columns: Column[];
  primaryKey: string[] | null;
  constraints: Constraint[];
  foreignKeys: ForeignKey[];
  indexes: Index[];
  policies: Policy[];
  grants: Grant[];
  /** View or materialized view query. */
  viewDefinition: string | null;
  securityInvoker: boolean;
  securityBarrier: boolean;
  /** Relations a view or materialized view reads, directly. */
  dependsOn: string[];
  estimatedRows: number;
}

export interface Role {
  name: string;
  superuser: boolean;
  bypassRls: boolean;
  canLogin: boolean;
  inherit: boolean;
  /** Roles this role is a direct member of. */
  memberOf: string[];
}

export interface FunctionInfo {
  oid: number;
  schema: string;
  name: string;
  /** regprocedure text, e.g. `public.list_messages(integer)`. */
  signature: string;
  owner: string;
  language: string;
  securityDefiner: boolean;
  volatility: 'immutable' | 'stable' | 'volatile';
  strict: boolean;
  returnsSet: boolean;
  /** format_type of the return type, e.g. `SETOF messages` is `messages` with returnsSet. */
  returnType: string;
  /** `composite` for a row type or TABLE(...), `trigger`, `void`, or `scalar`. */
  returnKind: 'composite' | 'scalar' | 'trigger' | 'void' | 'record';
  argumentTypes: string[];
  argumentNames: string[];
  /** Number of arguments that have defaults. */
  defaultArguments: number;
  /** proconfig, e.g. `search_path=pg_catalog, public`. */
  config: string[];
  source: string;
  /** pg_get_functiondef for PL/pgSQL functions (what the PL/pgSQL parser reads); '' for other languages. */
  definition: string;
  grants: Grant[];
}

export type TriggerEvent = 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE';

export interface Trigger {
  name: string;
  relation: string;
  function: string;
  functionOid: number;
  definition: string;
  enabled: boolean;
  /** The events it fires on (pg_trigger.tgtype), in this order: INSERT, UPDATE, DELETE, TRUNCATE. */
  events: TriggerEvent[];
}

/** A schema and who may create objects in it (CREATE) or look things up in it (USAGE). */
export interface SchemaInfo {
  name: string;
  owner: string;
  /** The schema's ACL, exploded; `public` is PUBLIC. */
  grants: Grant[];
}

export interface Catalog {
  serverVersion: string;
  serverVersionNum: number;
  database: string;
  currentUser: string;
  /** Every schema but pg_catalog, information_schema, pg_toast and the temporary ones, with its ACL. */
  schemas: SchemaInfo[];
  /** The database's owner and ACL (with its defaults: CONNECT and TEMPORARY to PUBLIC unless revoked). */
  databaseOwner: string;
  databaseGrants: Grant[];
  relations: Relation[];
  roles: Role[];
  functions: FunctionInfo[];
  triggers: Trigger[];
  /**
   * Sequences named by column defaults (pg_depend) of more than one relation: the sequence as regclass prints it,
   * the relations, and the columns whose defaults name it.
   */
  sharedSequences: { sequence: string; relations: string[]; columns: { relation: string; column: string }[] }[];
}
