/**
 * What a statement of a pg_dump script creates, and what it refers to, read with PostgreSQL's parser:
 * `--schema-from` names every statement the copy could not recreate by the object it would have made, and
 * decides from the relations and routines it names whether the audit of the copy still proves anything.
 */
import type { RawStmt } from './parse.js';

/** What kind of object a dump statement makes, as far as the audit's verdict is concerned. */
export type DumpObjectKind =
  | 'extension'
  | 'policy'
  | 'view'
  | 'table'
  | 'function'
  | 'grant'
  | 'trigger'
  | 'rule'
  | 'index'
  | 'role'
  | 'other';

export interface DumpStatement {
  kind: DumpObjectKind;
  /** The object in words: `policy orders_read on public.orders`, `extension old_snapshot`. */
  object: string;
  /** Relations the statement names (schema.name; the object's own relation first when it has one). */
  relations: string[];
  /** Names of the routines, types and languages it refers to (unqualified), to find what it depends on. */
  references: Set<string>;
  /** The routine a CREATE FUNCTION makes, or the routines a GRANT / REVOKE on functions names (unqualified). */
  routines: string[];
  /** The extension a CREATE EXTENSION makes. */
  extension?: string;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The strings of a name list (`[{ String: { sval } }]`). */
function nameList(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  return value.map((item) => (isObject(item) && isObject(item.String) ? String(item.String.sval ?? '') : '')).filter(Boolean);
}

function rangeName(range: unknown): string | null {
  if (!isObject(range) || typeof range.relname !== 'string') return null;
  return `${typeof range.schemaname === 'string' ? range.schemaname : 'public'}.${range.relname}`;
}

/** Every relation, routine, type and language named anywhere in the tree. */
function collect(node: unknown, relations: string[], references: Set<string>, parentKey = ''): void {
  if (Array.isArray(node)) {
    for (const item of node) collect(item, relations, references, parentKey);
    return;
  }
  if (!isObject(node)) return;
  const relation = rangeName(node);
  if (relation && !relations.includes(relation)) relations.push(relation);
  for (const key of ['funcname', 'objname']) {
    const names = nameList(node[key]);
    if (names.length) references.add(names.at(-1)!);
  }
  if ((parentKey === 'TypeName' || parentKey === 'typeName' || parentKey === 'returnType' || parentKey === 'argType') && Array.isArray(node.names)) {
    const names = nameList(node.names);
    if (names.length) references.add(names.at(-1)!);
  }
  if (parentKey === 'DefElem' && node.defname === 'language' && isObject(node.arg) && isObject(node.arg.String)) references.add(String(node.arg.String.sval));
  for (const [key, value] of Object.entries(node)) collect(value, relations, references, key);
}

/** `CreateCastStmt` as `create cast`. */
function words(nodeType: string): string {
  return nodeType
    .replace(/Stmt$/, '')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase();
}

/** What one statement of a dump makes and names. */
export function describeDumpStatement(raw: RawStmt): DumpStatement {
  const [nodeType, body] = Object.entries((raw.stmt ?? {}) as Json)[0] ?? ['', {}];
  const node = (isObject(body) ? body : {}) as Json;
  const relations: string[] = [];
  const references = new Set<string>();
  collect(node, relations, references);
  const own = (field: unknown) => rangeName(field) ?? '?';
  const base = { relations, references, routines: [] as string[] };
  switch (nodeType) {
    case 'CreateExtensionStmt':
      return { ...base, kind: 'extension', object: `extension ${String(node.extname)}`, extension: String(node.extname) };
    case 'CreatePolicyStmt':
    case 'AlterPolicyStmt':
      return { ...base, kind: 'policy', object: `policy ${String(node.policy_name)} on ${own(node.table)}` };
    case 'ViewStmt':
      return { ...base, kind: 'view', object: `view ${own(node.view)}` };
    case 'CreateTableAsStmt': {
      const into = isObject(node.into) ? node.into.rel : undefined;
      return { ...base, kind: 'view', object: `${node.objtype === 'OBJECT_MATVIEW' ? 'materialized view' : 'table'} ${own(into)}` };
    }
    case 'CreateStmt':
      return { ...base, kind: 'table', object: `table ${own(node.relation)}` };
    case 'AlterTableStmt':
      return { ...base, kind: 'table', object: `alter ${String(node.objtype ?? 'OBJECT_TABLE').replace(/^OBJECT_/, '').toLowerCase().replace(/_/g, ' ')} ${own(node.relation)}` };
    case 'CreateFunctionStmt': {
      const name = nameList(node.funcname);
      return { ...base, kind: 'function', object: `${node.is_procedure ? 'procedure' : 'function'} ${name.join('.')}`, routines: name.length ? [name.at(-1)!] : [] };
    }
    case 'GrantStmt': {
      const objtype = String(node.objtype ?? '').replace(/^OBJECT_/, '').toLowerCase().replace(/_/g, ' ');
      const objects = (Array.isArray(node.objects) ? node.objects : []).map((item) => {
        if (!isObject(item)) return '?';
        if (isObject(item.RangeVar)) return own(item.RangeVar);
        if (isObject(item.ObjectWithArgs)) return nameList(item.ObjectWithArgs.objname).join('.');
        if (isObject(item.String)) return String(item.String.sval);
        return '?';
      });
      const routines =
        objtype === 'function' || objtype === 'procedure' || objtype === 'routine'
          ? (Array.isArray(node.objects) ? node.objects : []).flatMap((item) => (isObject(item) && isObject(item.ObjectWithArgs) ? nameList(item.ObjectWithArgs.objname).slice(-1) : []))
          : [];
      return { ...base, kind: 'grant', object: `${node.is_grant === false ? 'revoke' : 'grant'} on ${objtype} ${objects.join(', ')}`, routines };
    }
    case 'CreateTrigStmt':
      return { ...base, kind: 'trigger', object: `trigger ${String(node.trigname)} on ${own(node.relation)}` };
    case 'RuleStmt':
      return { ...base, kind: 'rule', object: `rule ${String(node.rulename)} on ${own(node.relation)}` };
    case 'CommentStmt': {
      const objtype = String(node.objtype ?? '').replace(/^OBJECT_/, '').toLowerCase().replace(/_/g, ' ');
      const target = isObject(node.object) && isObject(node.object.String) ? String(node.object.String.sval) : nameList(node.object).join('.') || relations[0] || '';
      // COMMENT ON EXTENSION names the extension: it needs it.
      if (objtype === 'extension' && target) references.add(target);
      return { ...base, kind: 'other', object: `comment on ${objtype} ${target}`.trim() };
    }
    case 'IndexStmt':
      return { ...base, kind: 'index', object: `index ${String(node.idxname ?? '')} on ${own(node.relation)}` };
    case 'CreateRoleStmt':
      return { ...base, kind: 'role', object: `role ${String(node.role)}` };
    case 'AlterRoleStmt':
      return { ...base, kind: 'role', object: `role ${isObject(node.role) ? String(node.role.rolename ?? '') : '?'}` };
    case 'GrantRoleStmt':
      return { ...base, kind: 'role', object: 'role membership' };
    default:
      return { ...base, kind: 'other', object: `${words(nodeType)}${relations.length ? ` on ${relations.join(', ')}` : ''}` };
  }
}
