/**
 * A synthetic multi-tenant schema for benchmarks: a tenants table and N tenant-owned tables, each with a tenant
 * column, typed columns (text, integer, timestamptz, an enum-like CHECK), a composite (tenant_id, id) primary key,
 * composite foreign keys (tenant_id, parent_id) to one or two earlier tables, tenant-first indexes, forced RLS with
 * initplan-form policies, and grants to app_user. It is correct on purpose: a lint of it should find nothing.
 */

const POLICY_TENANT = "(select nullif(current_setting('app.current_tenant', true), '')::integer)";

/** Table names t001, t002, ... */
export function tableName(index) {
  return `t${String(index).padStart(3, '0')}`;
}

/** The earlier tables table `index` references (1-based): one for every table after the first, two for every third. */
export function parentsOf(index) {
  if (index === 1) return [];
  const parents = [Math.max(1, Math.floor(index / 2))];
  if (index % 3 === 0 && index - 1 !== parents[0]) parents.push(index - 1);
  return parents;
}

/** SQL for the schema, as one script. */
export function generateSchema({ tables = 100, role = 'app_user' } = {}) {
  const lines = [
    `create role ${role} nologin;`,
    'create table tenants (id integer primary key, name text not null, created_at timestamptz not null default now());',
    'alter table tenants enable row level security;',
    'alter table tenants force row level security;',
    `create policy tenant_self on tenants using (id = ${POLICY_TENANT});`,
    `grant select on tenants to ${role};`,
  ];
  for (let index = 1; index <= tables; index += 1) {
    const name = tableName(index);
    const parents = parentsOf(index);
    const columns = [
      '  tenant_id integer not null references tenants (id)',
      '  id bigint generated always as identity',
      '  name text not null',
      '  quantity integer not null default 0 check (quantity >= 0)',
      "  status text not null default 'open' check (status in ('open', 'pending', 'closed'))",
      '  created_at timestamptz not null default now()',
      ...parents.map((parent) => `  ${tableName(parent)}_id bigint not null`),
      '  primary key (tenant_id, id)',
      ...parents.map((parent) => `  foreign key (tenant_id, ${tableName(parent)}_id) references ${tableName(parent)} (tenant_id, id)`),
    ];
    lines.push(`create table ${name} (\n${columns.join(',\n')}\n);`);
    for (const parent of parents) lines.push(`create index ${name}_${tableName(parent)}_idx on ${name} (tenant_id, ${tableName(parent)}_id);`);
    lines.push(
      `create index ${name}_status_idx on ${name} (tenant_id, status);`,
      `alter table ${name} enable row level security;`,
      `alter table ${name} force row level security;`,
      `create policy tenant_isolation on ${name} using (tenant_id = ${POLICY_TENANT}) with check (tenant_id = ${POLICY_TENANT});`,
      `grant select, insert, update, delete on ${name} to ${role};`,
    );
  }
  return `${lines.join('\n')}\n`;
}
