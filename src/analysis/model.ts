/**
 * The analysis model: what the policies, view definitions and function bodies of a catalog mean for one role,
 * read with PostgreSQL's own parser. Computed once per audit by `analyze(catalog, role)` (src/analysis/index.ts);
 * rules, probes and the tenancy discovery read it instead of SQL text.
 */
import type { Policy } from '../catalog/types.js';

export type Command = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';
/** `using`: which existing rows a command sees or touches; `check`: which rows it may write (WITH CHECK). */
export type Clause = 'using' | 'check';

/**
 * How one way through a policy expression (a branch of its disjunctive normal form) admits rows without tying
 * them to the current tenant or actor:
 * - `always-true`: true for every row (`true`, `1 = 1`, `... or true`, `length(current_setting(..)) > 0`);
 * - `row-predicate`: decided by the row alone (`or is_public`, a sub-select over a table without row-level security);
 * - `escape-setting`: a setting, claim or role compared with a constant, e.g. `current_setting('app.bypass_rls', true) = 'on'`:
 *   whoever can set it reads every tenant;
 * - `fail-open`: true when the context is missing (`current_setting(..) is null`, `= ''`, `tenant_id = coalesce(<ctx>, tenant_id)`);
 * - `non-equality`: the row is compared with the context by something other than equality (`tenant_id >= <ctx>`).
 */
export type OpenKind = 'always-true' | 'row-predicate' | 'escape-setting' | 'fail-open' | 'non-equality';

/** What one branch does: ties rows to the context (`confined`), is never true (`dead`), admits unowned (NULL-key) rows, opens, or cannot be decided. */
export type BranchKind = 'confined' | 'dead' | 'unowned' | OpenKind | 'unknown';

export interface Branch {
  /** The conjunction, rendered as SQL. */
  text: string;
  kind: BranchKind;
  /** Settings (names) an `escape-setting` branch depends on. */
  settings: string[];
  /** The fragment that decides the kind, e.g. the `IS NULL` test of a fail-open branch, or why it is unknown. */
  reason: string;
  /**
   * For a `row-predicate` branch decided by visibility flags of the row alone (`is_public`, `private = false`,
   * `visibility = 'public'`): the conditions, all of which admit the row. Such rows are public by design when
   * read (SELECT); writes they open are still open. null otherwise.
   */
  publicFlags: RowFlag[] | null;
  /**
   * The constants the branch shows, other than NULL, booleans, '' and setting names: the values by which it may
   * single out a tenant (`current_setting('app.tenant') = '42'`), which coverage pairs with every other tenant.
   */
  constants: string[];
}

/** A row flag that makes a row visible to every tenant: `column = value` (value as PostgreSQL prints it: `true`, `false`, `public`). */
export interface RowFlag {
  column: string;
  value: string;
}

export type Verdict = 'confined' | 'open' | 'unknown';

export interface ExpressionAnalysis {
  /** The expression as pg_get_expr printed it. */
  text: string;
  /**
   * `confined`: every branch ties rows to the current tenant/actor (or is dead / admits only unowned rows in USING);
   * `open`: some branch lets rows through (see `open`); `unknown`: no branch opens but some cannot be decided (the probes decide).
   */
  verdict: Verdict;
  branches: Branch[];
  /** Branches that admit rows without the context (kinds in OpenKind). */
  open: Branch[];
  /** Context references found in the expression (helper function bodies included). */
  references: ContextReference[];
  /** Function calls in the expression, with where they are in `text` (for per-row / volatile-function rules). */
  calls: CallSite[];
  /** Relations its sub-selects read (qualified), e.g. the parent of a foreign-key path or a membership table. */
  relations: string[];
  /** Columns of the policy's own row it reads (also as outer references inside sub-selects). */
  rowColumns: string[];
  /** Columns of the relations its sub-selects read (helper bodies included), e.g. auth.users.raw_user_meta_data. */
  columnsRead: { relation: string; column: string }[];
  /** Set when the text did not parse (the verdict is then `unknown`). */
  parseError: string | null;
}

/**
 * Where the session's identity comes from:
 * - `setting`: `current_setting('app.tenant')` (custom GUC set by the application, e.g. with set_config);
 * - `jwt-claim`: a claim of a JSON web token, from a setting (`current_setting('request.jwt.claims', true)::json ->> 'sub'`,
 *   or PostgREST's legacy `current_setting('request.jwt.claim.sub')`) or from a function (`auth.jwt() ->> 'org_id'`);
 *   `path` is the key path into the claims (`['sub']`, `['app_metadata', 'org_id']`);
 * - `function`: a session function whose value the analysis takes as the actor/tenant (`auth.uid()`: not in the
 *   audited catalog, or a catalog function whose body reads the session and could not be inlined);
 * - `role`: `current_user`, `session_user` or `current_role`.
 */
export type ContextSource =
  | { kind: 'setting'; setting: string }
  | { kind: 'jwt-claim'; setting: string | null; function: string | null; path: string[] }
  | { kind: 'function'; function: string }
  | { kind: 'role'; keyword: 'current_user' | 'session_user' | 'current_role' };

/**
 * How a context reference is used at one place in a policy:
 * - `equality`: compared by equality (`=`, `IN`, `= ANY`, `IS NOT DISTINCT FROM`) with a row column: `relation.column` is a
 *   candidate tenant/actor key. When the comparison sits in a membership sub-select (`org_id in (select org_id from members
 *   where user_id = auth.uid())`), `relation.column` is the membership table's column (`members.user_id`) and `membership`
 *   says how the policy's row reaches it;
 * - `escape`: compared with a constant or used as a flag (`current_setting('app.bypass_rls', true) = 'on'`): never a tenant key;
 * - `fail-open`: tested for NULL / '' so that a missing context opens rows;
 * - `non-equality`: compared with a row column by another operator (`tenant_id >= ...`);
 * - `other`: anything else (a guard such as `<> ''`, an argument of an unknown function).
 */
export type ContextUse =
  | { kind: 'equality'; relation: string; column: string; membership: Membership | null; through?: IdentityLookup | null }
  | { kind: 'escape'; constant: string | null }
  | { kind: 'fail-open' }
  | { kind: 'non-equality'; relation: string; column: string; operator: string }
  | { kind: 'other' };

/**
 * The identity read through a table of the application's own: the row is compared with `valueColumn` of the
 * row of `table` whose `keyColumn` equals the context (`tenant_id = (select id from tenants where db_user =
 * current_user)`, `author_id = (select user_id from sessions where id = <claim>)`), often inside a helper.
 */
export interface IdentityLookup {
  /** Qualified name of the table read (tenants, app_private.sessions). */
  table: string;
  /** Its column compared with the context (db_user, id). */
  keyColumn: string;
  /** Its column the row is compared with (id, user_id). */
  valueColumn: string;
}

/** A membership sub-select: the policy's row column `rowColumn` must be among `table.column` of the rows the sub-select keeps. */
export interface Membership {
  /** Qualified name of the membership table (e.g. public.members). */
  table: string;
  /** The membership table's column the row is matched against (e.g. org_id). */
  column: string;
  /** The policy relation's column (e.g. org_id); null when the sub-select is correlated another way. */
  rowColumn: string | null;
}

export interface ContextReference {
  /** Stable identity of the source: `setting:app.tenant`, `jwt:request.jwt.claims:sub`, `jwt-fn:auth.jwt:org_id`, `function:auth.uid`, `role:current_user`. */
  key: string;
  source: ContextSource;
  /** The expression that produces the value, rendered (e.g. `current_setting('app.tenant', true)`). */
  text: string;
  /** For settings: current_setting(name, true) (NULL instead of an error when never set). null when not a setting. */
  missingOk: boolean | null;
  /** Wrapped in nullif(…, ''): the empty string left after a reset becomes NULL. */
  nullif: boolean;
  /** The non-text type the raw setting text is cast to (where '' raises an error); null when not cast or guarded by nullif. */
  castTo: string | null;
  /** The non-text type the setting's value is read as, guarded by nullif or not (`nullif(..., '')::integer`): the values it accepts. */
  readAs: string | null;
  /** The helper function the reference was found in (e.g. `public.current_tenant_id()`), null when written in the policy. */
  via: string | null;
  use: ContextUse;
  /** Where: the policy's relation (qualified), the policy name and the clause. */
  relation: string;
  policy: string;
  clause: Clause;
}

export interface CallSite {
  /** Lower-cased name as written (`current_setting`, `public.current_tenant`). */
  name: string;
  /** Character offsets of the call in the expression text: [start, end). */
  start: number;
  end: number;
  /** Inside a sub-select (`(select f())`): evaluated once per statement as an initplan, not per row. */
  inSubselect: boolean;
  /** For `current_setting('name' [, missing_ok])`: the setting, missing_ok, and whether it sits in nullif(…, ''). */
  setting: { name: string; missingOk: boolean; nullif: boolean } | null;
}

export interface PolicyAnalysis {
  policy: Policy;
  /** The policy applies to the role (PUBLIC, the role, or a role whose privileges it inherits, as check_role_for_policy decides). */
  applies: boolean;
  using: ExpressionAnalysis | null;
  /** The check PostgreSQL applies to written rows: WITH CHECK, or USING when there is none (ALL, UPDATE); null for SELECT/DELETE. */
  check: ExpressionAnalysis | null;
}

/** A permissive policy's open branch for one command/clause, with what gets through once restrictive policies are ANDed in. */
export interface OpenPath {
  policy: Policy;
  branch: Branch;
  kind: OpenKind;
  /** Restrictive policies that apply and did not fence this branch. */
  restrictive: Policy[];
}

export interface CommandClauseAnalysis {
  command: Command;
  clause: Clause;
  /** Policies for the command that apply to the role (permissive and restrictive). */
  policies: Policy[];
  /** A restrictive policy that confines every row: no permissive policy can widen access. */
  fence: Policy | null;
  /** Permissive branches that let rows through. */
  open: OpenPath[];
  /** Permissive branches that could not be decided (and were not fenced). */
  unknown: { policy: Policy; branch: Branch }[];
  /** SELECT only: permissive branches that admit rows by a visibility flag (`or is_public`): public by design, not open. */
  published: { policy: Policy; branch: Branch }[];
  /** confined: nothing opens and nothing is unknown; open: `open` is not empty; unknown otherwise. No permissive policy: confined (no rows). */
  verdict: Verdict;
}

export interface RelationAnalysis {
  relation: string;
  /** Row-level security applies to the role here (enabled, and the role is not a superuser, BYPASSRLS or an unforced owner). */
  rlsApplies: boolean;
  /** Columns its policies compare by equality with a context reference (candidate tenant/actor keys). */
  keyColumns: string[];
  /** Per command, USING and (INSERT/UPDATE) WITH CHECK. Empty when RLS is not enabled. */
  commands: CommandClauseAnalysis[];
}

/** One statement of a view definition or function body that reads or writes a relation. */
export interface BodyAccess {
  /** Qualified relation name. */
  relation: string;
  command: Command;
  /** The statement keeps only the caller's tenant/actor rows of this relation (every branch of its filter is confined). */
  confined: boolean;
  /** Why not, when not: the branch or construct that opens it. */
  reason: string;
}

/** A parameter of a function (`$1`) compared with a column of a relation in one of its statements' filters. */
export interface ParameterColumn {
  parameter: string;
  /** Qualified relation name. */
  relation: string;
  column: string;
}

/** A view definition or function body, parsed. */
export interface BodyAnalysis {
  /** View: qualified name; function: its signature (regprocedure). */
  name: string;
  kind: 'view' | 'function';
  /**
   * confined: every statement that reads or writes a relation keeps only the caller's rows (or it touches none);
   * open: a statement reads or writes rows without that (see `accesses`); unknown: it could not be read (dynamic
   * SQL, parse error, unsupported language) and nothing seen opens.
   */
  verdict: Verdict;
  /** Why it is open or unknown (e.g. "dynamic SQL not analysed: EXECUTE format(...)"). */
  reason: string;
  accesses: BodyAccess[];
  /** Relations it reads or writes, qualified, in order of appearance (without duplicates). */
  relations: string[];
  /**
   * Relations named without their schema, as written: a caller's temporary table of that name comes first
   * (pg_temp is searched before the path for relations, whatever the path says).
   */
  unqualified: string[];
  /** EXECUTE statements whose SQL is not a constant. */
  dynamicSql: string[];
  /** Functions it calls (lower-cased names as written). */
  calls: string[];
  /**
   * Function bodies: the columns each parameter is compared with (`where p.team_id = team`, `m.user_id in (member)`,
   * `col = any(ids)`) in the filters of its statements: what a caller's argument picks rows by.
   */
  parameterColumns: ParameterColumn[];
  /** Settings it reads with current_setting('name'), anywhere in the body. */
  settings: string[];
}

export interface Analysis {
  /** The role the policy scope and verdicts are for; null when computed before the role was known (then `relations` is empty). */
  role: string | null;
  policies: PolicyAnalysis[];
  relations: RelationAnalysis[];
  views: BodyAnalysis[];
  functions: BodyAnalysis[];
  /** Every context reference in every policy (applying to the role or not), for tenancy discovery. */
  contextReferences: ContextReference[];
}
