import { AuditError } from '../errors.js';
import { blankComments } from '../target/sent-sql.js';
import { scanTokens } from './parse.js';

/** What a context SQL placeholder stands for: `$tenant` (also `$1`), `$user`, `$role`. */
export type ContextParameter = 'tenant' | 'user' | 'role';

const NAMES: readonly ContextParameter[] = ['tenant', 'user', 'role'];

export interface CompiledContextSql {
  /** The SQL with positional placeholders, each typed text unless the SQL casts it. */
  sql: string;
  /** What `$1`, `$2`, ... of `sql` stand for, in order. */
  parameters: ContextParameter[];
}

/**
 * Read the application's context SQL with PostgreSQL's lexer: `$tenant` (or `$1`), `$user` and `$role`
 * become positional parameters; placeholders inside string literals or dollar quotes are text, not
 * parameters. A placeholder without a cast is bound as text, so that `json_build_object('sub', $user)`
 * has a type PostgreSQL can determine; in a CALL it is left untyped, so that the procedure's own argument
 * types decide (`call set_tenant($1)` with set_tenant(uuid)). Comments are left
 * out (sent SQL carries none).
 */
export function compileContextSql(written: string): CompiledContextSql {
  // What is sent carries no comment: each becomes spaces, so that every position stays where it was.
  const source = blankComments(written).trimEnd();
  const tokens = scanTokens(source);
  const uses: { start: number; end: number; name: ContextParameter; cast: boolean }[] = [];
  tokens.forEach((token, index) => {
    const next = tokens[index + 1];
    if (token.tokenName === 'PARAM') {
      if (token.text !== '$1') throw new AuditError(`context SQL ${written}: ${token.text} is not a context parameter; use $tenant (or $1), $user and $role`);
      uses.push({ start: token.start, end: token.end, name: 'tenant', cast: next?.tokenName === 'TYPECAST' });
      return;
    }
    if (token.text !== '$' || !next || next.start !== token.end) return;
    const name = next.text.toLowerCase() as ContextParameter;
    if (!NAMES.includes(name)) throw new AuditError(`context SQL ${written}: $${next.text} is not a context parameter; use $tenant (or $1), $user and $role`);
    uses.push({ start: token.start, end: next.end, name, cast: tokens[index + 2]?.tokenName === 'TYPECAST' });
  });
  if (!uses.length) throw new AuditError(`context SQL ${written} uses no parameter: give the tenant as $tenant (or $1), the user as $user, the role as $role`);
  const parameters = NAMES.filter((name) => uses.some((use) => use.name === name));
  const call = tokens[0]?.text.toLowerCase() === 'call';
  let sql = '';
  let at = 0;
  for (const use of uses) {
    sql += `${source.slice(at, use.start)}$${parameters.indexOf(use.name) + 1}${use.cast || call ? '' : '::text'}`;
    at = use.end;
  }
  return { sql: sql + source.slice(at), parameters };
}
