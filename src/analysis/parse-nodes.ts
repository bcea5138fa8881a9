/** Readers of PostgreSQL's raw parse tree (libpg-query's JSON): node kinds, names, casts, columns, constants, calls. */

export type Obj = Record<string, unknown>;

export function nodeKind(node: unknown): [string, Obj] | null {
  if (!node || typeof node !== 'object') return null;
  const [key] = Object.keys(node);
  return key ? [key, (node as Obj)[key] as Obj] : null;
}

export function stringsOf(list: unknown): string[] {
  return Array.isArray(list) ? list.map((item) => ((item as { String?: { sval?: string } }).String?.sval ?? '')) : [];
}

/** Strip type casts: `(status)::text` is the column status, `'open'::text` the literal 'open'. */
export function uncast(node: unknown): unknown {
  let current = node;
  for (let kind = nodeKind(current); kind?.[0] === 'TypeCast'; kind = nodeKind(current)) current = kind[1].arg;
  return current;
}

export function columnName(node: unknown): string | null {
  const kind = nodeKind(uncast(node));
  if (kind?.[0] !== 'ColumnRef') return null;
  const fields = stringsOf(kind[1].fields);
  return fields.length ? fields[fields.length - 1]! : null;
}

/** A constant as PostgreSQL input text; `null` for SQL NULL; undefined when the node is not a constant. */
export function constantText(node: unknown): string | null | undefined {
  const kind = nodeKind(uncast(node));
  if (!kind) return undefined;
  if (kind[0] === 'A_Const') {
    const value = kind[1];
    if (value.isnull) return null;
    if ('ival' in value) return String((value.ival as { ival?: number }).ival ?? 0);
    if ('fval' in value) return String((value.fval as { fval?: string }).fval ?? '0');
    if ('sval' in value) return String((value.sval as { sval?: string }).sval ?? '');
    if ('boolval' in value) return (value.boolval as { boolval?: boolean }).boolval ? 'true' : 'false';
    return undefined;
  }
  // -x on a constant the parser did not fold, e.g. -(5)::numeric
  if (kind[0] === 'A_Expr' && kind[1].kind === 'AEXPR_OP' && !kind[1].lexpr && stringsOf(kind[1].name)[0] === '-') {
    const inner = constantText(kind[1].rexpr);
    return typeof inner === 'string' ? (inner.startsWith('-') ? inner.slice(1) : `-${inner}`) : undefined;
  }
  return undefined;
}

export function functionCall(node: unknown): { name: string; args: unknown[] } | null {
  const kind = nodeKind(uncast(node));
  if (kind?.[0] !== 'FuncCall') return null;
  const names = stringsOf(kind[1].funcname);
  return { name: names[names.length - 1]!.toLowerCase(), args: (kind[1].args as unknown[] | undefined) ?? [] };
}
