import { scanTokens, statementSpans, type ScanToken } from '../analysis/parse.js';
import { primaryFixText } from '../findings/fix.js';
import { objectLabel, objectSubject, type Finding } from '../findings/finding.js';
import { severityRank } from '../findings/severity.js';
import { commentText, ident } from '../target/sql.js';
import type { Report } from './model.js';

/**
 * fix.sql: the fixes of a report's open findings merged per object into one script that applies in order.
 * A pure function of the report (the parser is the only other input: `await loadParser()` first).
 *
 * A finding's fix (`fixSteps`, findings/fix.ts) lists the statements to run and, as data, the alternatives,
 * which are left out of the script. The statements are read with PostgreSQL's parser:
 *  - the same statement proposed by several findings is written once;
 *  - every statement about one policy (ALTER POLICY, DROP POLICY + CREATE POLICY) becomes ONE coherent
 *    statement: the clauses the most severe findings ask for win, so fixes that would undo each other
 *    (one sets USING, another re-creates the policy with a different USING) cannot.
 * Findings that are accepted (and not expired) or refuted by the probes are not fixed.
 */

interface Clause {
  /** Text of the parenthesised expression, without the parentheses. */
  text: string;
  /** Offsets of the expression including its parentheses, in the statement. */
  start: number;
  end: number;
}

interface PolicyStatement {
  kind: 'alter' | 'create' | 'drop';
  /** schema.name, for grouping. */
  table: string;
  /** The table as an identifier: `"public"."notes"`. */
  tableIdent: string;
  policy: string;
  text: string;
  using: Clause | null;
  withCheck: Clause | null;
}

interface PolicyFix {
  tableIdent: string;
  policy: string;
  /** The CREATE POLICY of a rewrite (DROP + CREATE), if any finding asked for one. */
  create: PolicyStatement | null;
  dropped: boolean;
  using: string | null;
  withCheck: string | null;
}

type Step = { kind: 'sql'; text: string } | { kind: 'comment'; text: string } | { kind: 'policy'; fix: PolicyFix };

interface ObjectSection {
  title: string;
  findings: string[];
  steps: Step[];
}

/** The findings fix.sql repairs: open (not accepted, or acceptance expired) and not refuted by the probes. */
export function findingsToFix(report: Report): Finding[] {
  return report.findings
    .filter((finding) => (!finding.accepted || finding.accepted.expired) && !finding.refutedBy)
    .sort((a, b) => severityRank(b.severity) - severityRank(a.severity));
}

function relationNames(node: { schemaname?: string; relname?: string } | undefined): { table: string; tableIdent: string } {
  const schema = node?.schemaname ?? 'public';
  const name = node?.relname ?? '';
  return { table: `${schema}.${name}`, tableIdent: `${ident(schema)}.${ident(name)}` };
}

/** The parenthesised expression after `using` or `with check` at the statement's top level. */
function clausesOf(text: string): { using: Clause | null; withCheck: Clause | null } {
  const tokens = scanTokens(text).filter((token) => token.tokenName !== 'SQL_COMMENT' && token.tokenName !== 'C_COMMENT');
  const found: { using: Clause | null; withCheck: Clause | null } = { using: null, withCheck: null };
  let depth = 0;
  for (let index = 0; index < tokens.length; index += 1) {
    const token = tokens[index]!;
    if (token.text === '(') depth += 1;
    else if (token.text === ')') depth -= 1;
    if (depth !== 0) continue;
    const word = token.text.toLowerCase();
    let which: 'using' | 'withCheck' | null = null;
    let open = index + 1;
    if (word === 'using') which = 'using';
    else if (word === 'check' && tokens[index - 1]?.text.toLowerCase() === 'with') which = 'withCheck';
    if (!which || tokens[open]?.text !== '(') continue;
    const close = matchingParen(tokens, open);
    if (close < 0) continue;
    found[which] = { text: text.slice(tokens[open]!.end, tokens[close]!.start).trim(), start: tokens[open]!.start, end: tokens[close]!.end };
    index = close;
    open = close;
  }
  return found;
}

function matchingParen(tokens: ScanToken[], open: number): number {
  let depth = 0;
  for (let index = open; index < tokens.length; index += 1) {
    if (tokens[index]!.text === '(') depth += 1;
    else if (tokens[index]!.text === ')') {
      depth -= 1;
      if (depth === 0) return index;
    }
  }
  return -1;
}


interface ParsedStatement {
  text: string;
  policy: PolicyStatement | null;
}

/** The statements of a finding's fix without its alternatives, or null when the fix is not SQL the parser accepts. */
function statementsOf(finding: Finding): ParsedStatement[] | null {
  const primary = primaryFixText(finding);
  let parsed;
  try {
    parsed = statementSpans(primary);
  } catch {
    return null;
  }
  return parsed.map(({ raw, text: spanned }) => {
    const text = spanned.trim();
    const stmt = raw.stmt as Record<string, Record<string, unknown>> | undefined;
    const alter = stmt?.AlterPolicyStmt as { policy_name?: string; table?: { schemaname?: string; relname?: string } } | undefined;
    const create = stmt?.CreatePolicyStmt as { policy_name?: string; table?: { schemaname?: string; relname?: string } } | undefined;
    const drop = stmt?.DropStmt as { removeType?: string; objects?: { List?: { items?: { String?: { sval?: string } }[] } }[] } | undefined;
    if (alter?.policy_name || create?.policy_name) {
      const node = (alter ?? create)!;
      return { text, policy: { kind: alter ? 'alter' : 'create', ...relationNames(node.table), policy: node.policy_name!, text, ...clausesOf(text) } };
    }
    if (drop?.removeType === 'OBJECT_POLICY' && drop.objects?.length === 1) {
      const names = (drop.objects[0]!.List?.items ?? []).map((item) => item.String?.sval ?? '');
      const policy = names.pop() ?? '';
      const [schema, relname] = names.length === 1 ? [undefined, names[0]] : names;
      return { text, policy: { kind: 'drop', ...relationNames({ ...(schema ? { schemaname: schema } : {}), ...(relname ? { relname } : {}) }), policy, text, using: null, withCheck: null } };
    }
    return { text, policy: null };
  });
}

function commentLines(text: string): string {
  return text
    .split('\n')
    .map((line) => (line.trim().startsWith('--') ? line : `-- ${line}`))
    .join('\n');
}

function policyKey(table: string, policy: string): string {
  return `${table}\u0000${policy}`;
}

/** Replace the clauses of a CREATE POLICY with the merged ones, keeping everything else as written. */
function rewriteCreate(create: PolicyStatement, using: string | null, withCheck: string | null): string {
  const edits: { start: number; end: number; text: string }[] = [];
  if (create.using && using !== null) edits.push({ start: create.using.start, end: create.using.end, text: `(${using})` });
  if (create.withCheck && withCheck !== null) edits.push({ start: create.withCheck.start, end: create.withCheck.end, text: `(${withCheck})` });
  let text = create.text;
  for (const edit of edits.sort((a, b) => b.start - a.start)) text = text.slice(0, edit.start) + edit.text + text.slice(edit.end);
  if (!create.withCheck && withCheck !== null) text += `\n  with check (${withCheck})`;
  if (!create.using && using !== null) text += `\n  using (${using})`;
  return `${text};`;
}

/** One statement per policy: the re-created policy with the merged clauses, or one ALTER POLICY. */
function renderPolicy(fix: PolicyFix): string {
  const target = `${ident(fix.policy)} on ${fix.tableIdent}`;
  if (fix.create) return `${fix.dropped ? `drop policy if exists ${target};\n` : ''}${rewriteCreate(fix.create, fix.using, fix.withCheck)}`;
  // Removed without a replacement: a policy that no longer exists cannot be loose, whatever else was proposed for it.
  if (fix.dropped || (fix.using === null && fix.withCheck === null)) return `drop policy if exists ${target};`;
  const parts = [fix.using !== null ? `  using (${fix.using})` : null, fix.withCheck !== null ? `  with check (${fix.withCheck})` : null].filter(Boolean);
  return `alter policy ${target}\n${parts.join('\n')};`;
}

/**
 * The merged fix script. Objects appear in the order of their most severe finding; within an object the
 * statements keep the order of the findings (most severe first) and of each fix.
 */
export function renderFixScript(report: Report): string {
  const findings = findingsToFix(report);
  const sections = new Map<string, ObjectSection>();
  const policies = new Map<string, PolicyFix>();
  const seen = new Set<string>();
  for (const finding of findings) {
    const subject = objectSubject(finding.object);
    const section = sections.get(subject) ?? { title: subject, findings: [], steps: [] };
    sections.set(subject, section);
    section.findings.push(`${finding.severity} ${finding.check} on ${objectLabel(finding.object)}`);
    const statements = statementsOf(finding);
    if (!statements || !statements.length) {
      section.steps.push({ kind: 'comment', text: `${finding.check} on ${objectLabel(finding.object)}: no statement to run; what to do:\n${finding.fix}` });
      continue;
    }
    for (const statement of statements) {
      if (statement.policy) {
        const { table, policy } = statement.policy;
        const key = policyKey(table, policy);
        let fix = policies.get(key);
        if (!fix) {
          fix = { tableIdent: statement.policy.tableIdent, policy, create: null, dropped: false, using: null, withCheck: null };
          policies.set(key, fix);
          section.steps.push({ kind: 'policy', fix });
        }
        if (statement.policy.kind === 'drop') {
          fix.dropped = true;
          continue;
        }
        if (statement.policy.kind === 'create' && !fix.create) fix.create = statement.policy;
        // The most severe finding's clause wins; later findings fill only what it left open.
        if (fix.using === null && statement.policy.using) fix.using = statement.policy.using.text;
        if (fix.withCheck === null && statement.policy.withCheck) fix.withCheck = statement.policy.withCheck.text;
        continue;
      }
      if (seen.has(statement.text)) continue;
      seen.add(statement.text);
      section.steps.push({ kind: 'sql', text: statement.text.endsWith(';') ? statement.text : `${statement.text};` });
    }
  }
  const lines = [
    `-- fix.sql: rls-audit ${report.tool.version}, ${report.command} of ${commentText(report.scenario.name)} (${report.startedAt})`,
    `-- ${findings.length} open finding${findings.length === 1 ? '' : 's'}, merged per object. Apply in one transaction (psql --single-transaction -f fix.sql)`,
    '-- and re-run the audit.',
  ];
  for (const section of sections.values()) {
    lines.push('', `-- ${commentText(section.title)}: ${commentText(section.findings.join('; '))}`);
    for (const step of section.steps) {
      if (step.kind === 'sql') lines.push(step.text);
      else if (step.kind === 'comment') lines.push(commentLines(step.text));
      else lines.push(renderPolicy(step.fix));
    }
  }
  return `${lines.join('\n')}\n`;
}
