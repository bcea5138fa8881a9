import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateXML } from 'xmllint-wasm';
import { Ajv } from 'ajv';
import { checkReadmeAnchor, headingAnchor } from '../src/findings/checks.js';
import { findingLocationKey } from '../src/report/locate.js';
import { PACKAGE_README_URL, repositoryPage } from '../src/report/sarif.js';
import { applyAcceptances } from '../src/findings/accept.js';
import { summarize } from '../src/findings/verdict.js';
import { OBJECT_KINDS, objectLabel, objectSubject, type Finding } from '../src/findings/finding.js';
import { allChecks, renderJunit, renderMarkdown, renderSarif, RULES, writeReports, type Report, type SarifLog } from '../src/index.js';
import { MARKDOWN_LIMIT } from '../src/report/markdown.js';
import { SEVERITIES, type Severity } from '../src/findings/severity.js';
import { allFindings, FIXTURES, ROOT, runCli, type CliRun } from './helpers.js';

const addFormats = createRequire(import.meta.url)('ajv-formats') as typeof import('ajv-formats').default;

// ---------------------------------------------------------------------------------------------------------
// A small, strict XML 1.0 reader: enough to prove the JUnit output is well-formed and to count its elements.
// It rejects anything a real parser would: unbalanced or mismatched tags, unquoted or duplicate attributes,
// `<` in attribute values, bare `&` or unknown entities, characters XML 1.0 forbids, text outside the root.

interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME_START = /[A-Za-z_:]/;
const NAME_CHAR = /[A-Za-z0-9_:.-]/;

function decodeEntities(raw: string, where: string): string {
  let out = '';
  for (let index = 0; index < raw.length; index++) {
    const character = raw[index]!;
    if (character !== '&') {
      out += character;
      continue;
    }
    const end = raw.indexOf(';', index);
    if (end < 0) throw new Error(`bare & in ${where}`);
    const entity = raw.slice(index + 1, end);
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (entity in named) out += named[entity];
    else if (/^#[0-9]+$/.test(entity)) out += String.fromCodePoint(Number(entity.slice(1)));
    else if (/^#x[0-9a-fA-F]+$/.test(entity)) out += String.fromCodePoint(parseInt(entity.slice(2), 16));
    else throw new Error(`unknown entity &${entity}; in ${where}`);
    index = end;
  }
  return out;
}

function parseXml(xml: string): XmlElement {
  for (const character of xml) {
    const code = character.codePointAt(0)!;
    const legal = code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || code >= 0x10000;
    if (!legal) throw new Error(`character U+${code.toString(16)} is not allowed in XML 1.0`);
  }
  let position = 0;
  if (xml.startsWith('<?xml')) {
    position = xml.indexOf('?>') + 2;
    if (position < 2) throw new Error('unterminated XML declaration');
  }
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  const readName = () => {
    const start = position;
    if (!NAME_START.test(xml[position] ?? '')) throw new Error(`bad name at ${position}`);
    while (NAME_CHAR.test(xml[position] ?? '')) position++;
    return xml.slice(start, position);
  };
  const skipSpace = () => {
    while (/\s/.test(xml[position] ?? '')) position++;
  };
  while (position < xml.length) {
    if (xml[position] !== '<') {
      const next = xml.indexOf('<', position);
      const raw = xml.slice(position, next < 0 ? xml.length : next);
      if (!stack.length) {
        if (raw.trim()) throw new Error(`text outside the root element: ${raw.trim().slice(0, 40)}`);
      } else {
        stack[stack.length - 1]!.text += decodeEntities(raw, `<${stack[stack.length - 1]!.name}>`);
      }
      position = next < 0 ? xml.length : next;
      continue;
    }
    if (xml.startsWith('</', position)) {
      position += 2;
      const name = readName();
      skipSpace();
      if (xml[position] !== '>') throw new Error(`bad closing tag </${name}`);
      position++;
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`</${name}> closes <${open?.name ?? 'nothing'}>`);
      continue;
    }
    if (xml.startsWith('<!', position) || xml.startsWith('<?', position)) throw new Error(`unexpected markup at ${position}`);
    position++;
    const element: XmlElement = { name: readName(), attributes: {}, children: [], text: '' };
    for (;;) {
      const before = position;
      skipSpace();
      if (xml.startsWith('/>', position) || xml[position] === '>') break;
      if (position === before) throw new Error(`attributes of <${element.name}> need whitespace between them`);
      const attribute = readName();
      if (xml[position] !== '=') throw new Error(`attribute ${attribute} of <${element.name}> has no value`);
      const quote = xml[position + 1];
      if (quote !== '"' && quote !== "'") throw new Error(`attribute ${attribute} of <${element.name}> is not quoted`);
      const end = xml.indexOf(quote, position + 2);
      if (end < 0) throw new Error(`unterminated attribute ${attribute}`);
      const raw = xml.slice(position + 2, end);
      if (raw.includes('<')) throw new Error(`< in attribute ${attribute} of <${element.name}>`);
      if (attribute in element.attributes) throw new Error(`duplicate attribute ${attribute} on <${element.name}>`);
      element.attributes[attribute] = decodeEntities(raw, `${element.name}@${attribute}`);
      position = end + 1;
    }
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(element);
    else if (root) throw new Error('a second root element');
    else root = element;
    if (xml.startsWith('/>', position)) position += 2;
    else {
      position++;
      stack.push(element);
    }
  }
  if (stack.length) throw new Error(`<${stack[stack.length - 1]!.name}> is never closed`);
  if (!root) throw new Error('no root element');
  return root;
}

const childrenNamed = (element: XmlElement, name: string) => element.children.filter((child) => child.name === name);

const JUNIT_XSD = readFileSync(path.join(ROOT, 'test', 'schemas', 'junit-10.xsd'), 'utf8');

/** Errors of Jenkins' junit-10.xsd (libxml2's validator, as xmllint runs it) on a JUnit document; empty when valid. */
async function junitSchemaErrors(xml: string): Promise<string[]> {
  const result = await validateXML({ xml: [{ fileName: 'report.junit.xml', contents: xml }], schema: [JUNIT_XSD] });
  return result.valid ? [] : result.errors.map((error) => error.rawMessage);
}

/**
 * Validates the JUnit document against junit-10.xsd, parses it, and checks that every count attribute
 * matches the elements it counts.
 */
async function checkJunit(xml: string): Promise<XmlElement> {
  expect(await junitSchemaErrors(xml)).toEqual([]);
  const root = parseXml(xml);
  expect(root.name).toBe('testsuites');
  let tests = 0;
  let failures = 0;
  let skipped = 0;
  for (const suite of root.children) {
    expect(suite.name).toBe('testsuite');
    const cases = childrenNamed(suite, 'testcase');
    expect(cases.length).toBe(suite.children.length);
    const suiteFailures = cases.filter((testCase) => childrenNamed(testCase, 'failure').length).length;
    const suiteSkipped = cases.filter((testCase) => childrenNamed(testCase, 'skipped').length).length;
    for (const testCase of cases) {
      expect(childrenNamed(testCase, 'failure').length + childrenNamed(testCase, 'skipped').length).toBeLessThanOrEqual(1);
      expect(testCase.attributes.classname).toBe(`rls-audit.${suite.attributes.name}`);
    }
    expect(suite.attributes).toMatchObject({ tests: String(cases.length), failures: String(suiteFailures), skipped: String(suiteSkipped), errors: '0' });
    tests += cases.length;
    failures += suiteFailures;
    skipped += suiteSkipped;
  }
  expect(root.attributes).toMatchObject({ tests: String(tests), failures: String(failures), errors: '0' });
  expect(root.attributes.skipped).toBeUndefined();
  expect(skipped).toBeGreaterThanOrEqual(0);
  return root;
}

function testCase(root: XmlElement, check: string, object: string): XmlElement | undefined {
  const suite = root.children.find((entry) => entry.attributes.name === check);
  return suite?.children.find((entry) => entry.attributes.name === object);
}

// ---------------------------------------------------------------------------------------------------------
// SARIF 2.1.0: the properties the schema requires, the enumerations it restricts, and what GitHub reads.

const LEVELS = ['none', 'note', 'warning', 'error'];

/** The OASIS SARIF 2.1.0 schema (draft-07), with its string formats (uri, date-time) checked. */
const validateSarifSchema = (() => {
  // Its language-code pattern is not valid as a Unicode regular expression: ajv must compile it without the u flag.
  const ajv = new Ajv({ allErrors: true, strict: false, unicodeRegExp: false });
  addFormats(ajv);
  return ajv.compile(JSON.parse(readFileSync(path.join(ROOT, 'test', 'schemas', 'sarif-schema-2.1.0.json'), 'utf8')) as object);
})();

/** Errors of the SARIF 2.1.0 schema on a log, as `path: message`; empty when valid. */
function sarifSchemaErrors(log: unknown): string[] {
  return validateSarifSchema(log) ? [] : (validateSarifSchema.errors ?? []).map((error) => `${error.instancePath}: ${error.message}`);
}

function checkSarif(text: string): SarifLog {
  const log = JSON.parse(text) as SarifLog;
  expect(sarifSchemaErrors(log)).toEqual([]);
  expect(log.$schema).toBe('https://json.schemastore.org/sarif-2.1.0.json');
  expect(log.version).toBe('2.1.0');
  expect(Array.isArray(log.runs)).toBe(true);
  expect(log.runs).toHaveLength(1);
  const run = log.runs[0]!;
  expect(run.tool.driver.name).toBe('rls-audit');
  expect(typeof run.tool.driver.version).toBe('string');
  const ids = run.tool.driver.rules.map((rule) => rule.id);
  expect(new Set(ids).size).toBe(ids.length);
  for (const rule of run.tool.driver.rules) {
    expect(typeof rule.id).toBe('string');
    expect(rule.shortDescription.text.length).toBeGreaterThan(0);
    expect(LEVELS).toContain(rule.defaultConfiguration.level);
    const securitySeverity = rule.properties['security-severity'];
    expect(typeof securitySeverity).toBe('string');
    expect(Number(securitySeverity)).toBeGreaterThanOrEqual(0);
    expect(Number(securitySeverity)).toBeLessThanOrEqual(10);
    expect(rule.properties.tags).toEqual(['security', 'rls']);
    // GitHub shows a rule's help beside each alert (and warns on every rule without it).
    expect(rule.help.text.length).toBeGreaterThan(0);
    expect(rule.help.markdown.length).toBeGreaterThan(0);
  }
  for (const result of run.results) {
    expect(typeof result.message.text).toBe('string');
    expect(result.message.text.length).toBeGreaterThan(0);
    expect(LEVELS).toContain(result.level);
    expect(run.tool.driver.rules[result.ruleIndex]!.id).toBe(result.ruleId);
    expect(result.locations.length).toBeGreaterThan(0);
    for (const location of result.locations) {
      // File locations are relative to %SRCROOT%, which the run defines as an absolute directory URI.
      if (location.physicalLocation) {
        expect(location.physicalLocation.artifactLocation.uriBaseId).toBe('%SRCROOT%');
        expect(run.originalUriBaseIds?.['%SRCROOT%'].uri).toMatch(/^file:\/\/\/.*\/$/);
      }
      for (const logical of location.logicalLocations) {
        expect(typeof logical.fullyQualifiedName).toBe('string');
        expect(OBJECT_KINDS).toContain(logical.kind);
      }
    }
    for (const value of Object.values(result.partialFingerprints)) expect(value).toMatch(/^[0-9a-f]{32}$/);
    for (const suppression of result.suppressions ?? []) {
      expect(['inSource', 'external']).toContain(suppression.kind);
      expect(typeof suppression.justification).toBe('string');
    }
  }
  return log;
}

// ---------------------------------------------------------------------------------------------------------

const SUMMARY_START = 'previous step summary\n';
let outDir: string;
let summaryFile: string;
let vulnerable: CliRun;
let original: Report;
let originalAgain: Report;
let otherSeed: Report;
let linted: Report;
const savedSummary = process.env.GITHUB_STEP_SUMMARY;

function auditOriginal(seed: string, out: string): Promise<CliRun> {
  return runCli(['run', '--schema', path.join(FIXTURES, 'seed-original', 'schema.sql'), '--role', 'app_user', '--seed', seed, '--quiet', '--out', out]);
}

beforeAll(async () => {
  outDir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-ci-'));
  summaryFile = path.join(outDir, 'step-summary.md');
  await writeFile(summaryFile, SUMMARY_START);
  // Every run below sees GITHUB_STEP_SUMMARY; only the one that asks for markdown may append to it.
  process.env.GITHUB_STEP_SUMMARY = summaryFile;
  vulnerable = await runCli([
    'run', '--schema', path.join(FIXTURES, 'rls-disabled', 'schema.sql'), '--role', 'app_user', '--seed', '7', '--quiet',
    '--out', path.join(outDir, 'vulnerable'), '--format', 'sarif,junit', '--format', 'markdown',
  ]);
  original = (await auditOriginal('7', path.join(outDir, 'original'))).report!;
  originalAgain = (await auditOriginal('7', path.join(outDir, 'original-again'))).report!;
  otherSeed = (await auditOriginal('8', path.join(outDir, 'other-seed'))).report!;
  linted = (await runCli(['lint', '--schema', path.join(FIXTURES, 'rls-disabled', 'schema.sql'), '--role', 'app_user', '--quiet', '--out', path.join(outDir, 'lint'), '--format', 'junit'])).report!;
});

afterAll(async () => {
  if (savedSummary === undefined) delete process.env.GITHUB_STEP_SUMMARY;
  else process.env.GITHUB_STEP_SUMMARY = savedSummary;
  await rm(outDir, { recursive: true, force: true });
});

/** The report with findings accepted (as the scenario's `accept:` would) and the summary recomputed. */
function accepting(report: Report, acceptances: { check: string; object: string; reason: string; expires?: string }[], failOn: Severity = report.scenario.failOn): Report {
  const findings = applyAcceptances(report.findings, acceptances, '2026-06-01');
  const summary = summarize(findings, report.probes, failOn, report.summary.rowsSeeded, report.summary.queries);
  return { ...report, findings, summary, scenario: { ...report.scenario, failOn } };
}

describe('the CLI writes the CI formats', () => {
  it('--format sarif,junit --format markdown writes them beside report.json, and the run still fails on the findings', async () => {
    expect(vulnerable.err).toBe('');
    expect(vulnerable.code).toBe(1);
    expect(readdirSync(path.join(outDir, 'vulnerable')).sort()).toEqual(['fix.sql', 'report.html', 'report.json', 'report.junit.xml', 'report.md', 'report.sarif']);
    const report = vulnerable.report!;
    expect(await readFile(path.join(outDir, 'vulnerable', 'report.sarif'), 'utf8')).toBe(renderSarif(report));
    expect(await readFile(path.join(outDir, 'vulnerable', 'report.junit.xml'), 'utf8')).toBe(renderJunit(report));
    expect(await readFile(path.join(outDir, 'vulnerable', 'report.md'), 'utf8')).toBe(renderMarkdown(report));
  });

  it('without --format, report.json and report.html as before', () => {
    expect(readdirSync(path.join(outDir, 'original')).sort()).toEqual(['fix.sql', 'report.html', 'report.json']);
  });

  it('appends the markdown to GITHUB_STEP_SUMMARY once, for the run that asked for markdown', async () => {
    const markdown = await readFile(path.join(outDir, 'vulnerable', 'report.md'), 'utf8');
    expect(await readFile(summaryFile, 'utf8')).toBe(`${SUMMARY_START}${markdown}\n`);
  });

  it('rejects an unknown format with exit code 2 before auditing anything', async () => {
    const run = await runCli(['run', '--schema', path.join(FIXTURES, 'rls-disabled', 'schema.sql'), '--role', 'app_user', '--format', 'json,xml']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/unknown format xml: use json, html, sarif, junit, markdown/);
    expect(run.report).toBeNull();
  });

  it('writeReports writes report.json, report.html and fix.sql whatever the formats, in a fixed order', async () => {
    const dir = path.join(outDir, 'direct');
    const files = await writeReports(original, dir, ['markdown', 'sarif']);
    expect(files.map((file) => path.basename(file))).toEqual(['report.json', 'report.html', 'report.sarif', 'report.md', 'fix.sql']);
    expect(files.every((file) => existsSync(file))).toBe(true);
  });
});

describe('SARIF', () => {
  it('has the required SARIF 2.1.0 structure: one rule per reported check, one result per finding', () => {
    const report = vulnerable.report!;
    const log = checkSarif(renderSarif(report));
    const run = log.runs[0]!;
    expect(run.results).toHaveLength(report.findings.length);
    expect(run.tool.driver.rules.map((rule) => rule.id).sort()).toEqual([...new Set(report.findings.map((finding) => finding.check))].sort());
    const catalog = new Map(allChecks().map((check) => [check.id, check]));
    for (const rule of run.tool.driver.rules) {
      expect(rule.shortDescription.text).toBe(catalog.get(rule.id)!.title);
      expect(rule.fullDescription!.text).toBe(catalog.get(rule.id)!.explanation);
    }
    const rlsDisabled = run.results.find((result) => result.ruleId === 'rls-disabled')!;
    expect(rlsDisabled).toMatchObject({
      level: 'error',
      message: { text: allFindings(report.findings).find((finding) => finding.check === 'rls-disabled')!.message },
      locations: [
        {
          // The statement of the fixture that creates public.notes: code scanning needs a file location.
          physicalLocation: {
            artifactLocation: { uri: 'test/fixtures/rls-disabled/schema.sql', uriBaseId: '%SRCROOT%' },
            region: { startLine: 4, startColumn: 1, endLine: 4, endColumn: 118 },
          },
          logicalLocations: [{ fullyQualifiedName: 'public.notes', kind: 'table' }],
        },
      ],
      properties: { severity: 'critical', source: 'rule' },
    });
    // A policy's defect points at its CREATE POLICY (lines 8 and 9 of the fixture), its table's at CREATE TABLE.
    const startLines = (check: string) => run.results.filter((result) => result.ruleId === check).map((result) => `${result.locations[0]!.logicalLocations[0]!.fullyQualifiedName}:${result.locations[0]!.physicalLocation!.region.startLine}`).sort();
    expect(startLines('policy-per-row-setting')).toEqual(['public.projects:9', 'public.tenants:8']);
    expect(startLines('missing-tenant-index')).toEqual(['public.notes:4', 'public.projects:5']);
    // %SRCROOT% is the directory the audit ran in; every result points at a file that exists under it, so
    // GitHub's upload accepts the log and maps it onto the checkout.
    expect(run.originalUriBaseIds).toEqual({ '%SRCROOT%': { uri: `${pathToFileURL(ROOT).href}/`, description: { text: expect.any(String) } } });
    for (const result of run.results) {
      const physical = result.locations[0]!.physicalLocation!;
      expect(physical.region.startLine).toBeGreaterThan(0);
      expect(existsSync(fileURLToPath(new URL(physical.artifactLocation.uri, run.originalUriBaseIds!['%SRCROOT%'].uri)))).toBe(true);
    }
    expect(rlsDisabled.properties.confirmedBy!.length).toBeGreaterThan(0);
    expect(rlsDisabled.properties.fix).toMatch(/enable row level security/);
    expect(run.tool.driver.rules.find((rule) => rule.id === 'rls-disabled')!.properties['security-severity']).toBe('9.5');
  });

  it('maps severities to levels and security-severity', () => {
    const log = checkSarif(renderSarif(original));
    const results = log.runs[0]!.results;
    const levelOf: Record<Severity, string> = { critical: 'error', high: 'error', medium: 'warning', low: 'note', info: 'note' };
    for (const result of results) expect(result.level).toBe(levelOf[result.properties.severity]);
    const rules = new Map(log.runs[0]!.tool.driver.rules.map((rule) => [rule.id, rule]));
    // A rule's severity is that of its worst result in this report, not the check's maximum.
    const worstOf = (id: string) => results.filter((result) => result.ruleId === id).map((result) => result.properties.severity).sort((x, y) => SEVERITIES.indexOf(y) - SEVERITIES.indexOf(x))[0]!;
    const securityOf: Record<Severity, string> = { critical: '9.5', high: '8.0', medium: '5.5', low: '3.0', info: '0.0' };
    expect(rules.size).toBeGreaterThan(1);
    for (const [id, rule] of rules) expect(rule.properties).toMatchObject({ severity: worstOf(id), 'security-severity': securityOf[worstOf(id)] });
    expect(rules.get('foreign-key-without-tenant')!.properties['security-severity']).toBe('5.5');
    expect(results.find((result) => result.ruleId === 'foreign-key-without-tenant')!.level).toBe('warning');
  });

  it('accepted findings are suppressed; an expired acceptance is not', () => {
    // read-isolation proved the rls-disabled defect: accepting either check accepts the one finding.
    const accepted = checkSarif(renderSarif(accepting(vulnerable.report!, [{ check: 'read-isolation', object: 'public.notes', reason: 'legacy | table <b>', expires: '2030-01-01' }]))).runs[0]!.results;
    const suppressed = accepted.filter((result) => result.suppressions);
    expect(suppressed.map((result) => result.ruleId)).toEqual(['rls-disabled']);
    expect(suppressed[0]!.suppressions).toEqual([{ kind: 'external', justification: 'legacy | table <b>' }]);
    const lapsedLog = checkSarif(renderSarif(accepting(vulnerable.report!, [{ check: 'rls-disabled', object: 'public.notes', reason: 'was temporary', expires: '2026-01-01' }]))).runs[0]!.results;
    const lapsed = lapsedLog.find((result) => result.ruleId === 'rls-disabled')!;
    expect(lapsed.suppressions).toBeUndefined();
    expect(lapsed.properties.acceptance).toEqual({ reason: 'was temporary', expires: '2026-01-01', expired: true });
  });

  it('fingerprints are the same across runs, whatever the tenant ids, and distinct within a run', () => {
    expect(otherSeed.tenants.map((tenant) => tenant.id)).not.toEqual(original.tenants.map((tenant) => tenant.id));
    const fingerprints = (report: Report) =>
      new Map(checkSarif(renderSarif(report)).runs[0]!.results.map((result) => [`${result.ruleId} ${result.locations[0]!.logicalLocations[0]!.fullyQualifiedName}`, result.partialFingerprints['rlsAudit/v1']]));
    const first = fingerprints(original);
    expect(first.size).toBe(original.findings.length);
    expect(new Set(first.values()).size).toBe(first.size);
    expect(fingerprints(originalAgain)).toEqual(first);
    expect(fingerprints(otherSeed)).toEqual(first);
    // Tenant ids appear in the findings of both runs, so the fingerprints above really ignore them.
    expect(original.findings.some((finding) => finding.tenant && original.tenants.some((tenant) => tenant.id === finding.tenant))).toBe(true);
  });

  it('two findings of one check on one object get distinct, stable fingerprints; the object kind follows the finding', () => {
    // Findings made up here carry no fingerprint: the SARIF renderer computes them as a report would.
    const { fingerprint: _fingerprint, ...base } = allFindings(vulnerable.report!.findings).find((finding) => finding.check === 'read-isolation')!;
    const findings: Finding[] = [
      { ...base, message: 'first' },
      { ...base, message: 'second', tenant: 'x' },
      { ...base, check: 'definer-function', object: { kind: 'function', name: 'public.search(text)' }, source: 'rule' },
      { ...base, check: 'bypassrls-role', object: { kind: 'role', name: 'auditor' }, source: 'rule' },
    ];
    const log = checkSarif(renderSarif({ ...vulnerable.report!, findings }));
    const [first, second, fn, role] = log.runs[0]!.results;
    expect(first!.partialFingerprints['rlsAudit/v1']).not.toBe(second!.partialFingerprints['rlsAudit/v1']);
    const again = checkSarif(renderSarif({ ...vulnerable.report!, findings: findings.map((finding) => ({ ...finding, tenant: 'another' })) })).runs[0]!.results;
    expect(again.map((result) => result.partialFingerprints)).toEqual([first, second, fn, role].map((result) => result!.partialFingerprints));
    expect(fn!.locations[0]!.logicalLocations[0]).toEqual({ fullyQualifiedName: 'public.search(text)', kind: 'function' });
    expect(role!.locations[0]!.logicalLocations[0]).toEqual({ fullyQualifiedName: 'auditor', kind: 'role' });
  });
});

describe('SARIF for GitHub code scanning', () => {
  const README_URL = 'https://example.test/acme/rls-audit';

  it('every rule has help: what the check proves, the fixes of its findings, and its README section', async () => {
    const report = original;
    const run = checkSarif(renderSarif(report, { readmeUrl: README_URL })).runs[0]!;
    expect(run.tool.driver.informationUri).toBe(README_URL);
    const readme = (await readFile(path.join(ROOT, 'README.md'), 'utf8')).split('\n');
    const catalog = new Map(allChecks().map((check) => [check.id, check]));
    expect(run.tool.driver.rules.length).toBeGreaterThan(1);
    for (const rule of run.tool.driver.rules) {
      const check = catalog.get(rule.id)!;
      const anchor = checkReadmeAnchor(check);
      // The link goes to a README section that lists the check: its heading, then its row before the next heading.
      const heading = readme.findIndex((line) => /^#{1,6} /.test(line) && headingAnchor(line.replace(/^#+ /, '')) === anchor);
      expect(heading, anchor).toBeGreaterThan(0);
      const next = readme.findIndex((line, index) => index > heading && /^#{1,6} /.test(line));
      expect(readme.slice(heading, next < 0 ? undefined : next).some((line) => line.startsWith(`| \`${rule.id}\` |`)), rule.id).toBe(true);
      expect(rule.helpUri).toBe(`${README_URL}#${anchor}`);
      expect(rule.help.markdown).toContain(`](${README_URL}#${anchor})`);
      expect(rule.help.text).toContain(`${README_URL}#${anchor}`);
      for (const help of [rule.help.text, rule.help.markdown]) {
        expect(help).toContain(check.title);
        expect(help).toContain(check.explanation);
      }
      // The fix of every finding of the rule (up to five distinct ones), the SQL verbatim in a code block.
      const fixes = [...new Set(report.findings.filter((finding) => finding.check === rule.id).map((finding) => finding.fix))];
      expect(fixes.length).toBeGreaterThan(0);
      for (const fix of fixes.slice(0, 5)) {
        expect(rule.help.text).toContain(fix);
        expect(rule.help.markdown).toMatch(new RegExp(`(\`{3,})sql\\n${fix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n\\1`));
      }
    }
  });

  it('without a published README, links README.md relatively and leaves helpUri out (it must be absolute)', () => {
    const log = checkSarif(renderSarif(vulnerable.report!, {}));
    for (const rule of log.runs[0]!.tool.driver.rules) {
      expect(rule.helpUri).toBeUndefined();
      expect(rule.help.markdown).toMatch(/\]\(README\.md#(probes-run|rules-lint-and-run)\)\.$/);
    }
    // Why: the schema's helpUri is a URI, which a relative reference is not.
    const relative = JSON.parse(renderSarif(vulnerable.report!, {})) as SarifLog;
    relative.runs[0]!.tool.driver.rules[0]!.helpUri = 'README.md#rules-lint-and-run';
    expect(sarifSchemaErrors(relative).join('\n')).toMatch(/helpUri: must match format "uri"/);
  });

  it('reads the README page from package.json: repository (URL or shorthand), else homepage', () => {
    expect(repositoryPage({ type: 'git', url: 'git+https://github.com/acme/rls-audit.git' })).toBe('https://github.com/acme/rls-audit');
    expect(repositoryPage('github:acme/rls-audit')).toBe('https://github.com/acme/rls-audit');
    expect(repositoryPage('gitlab:acme/rls-audit')).toBe('https://gitlab.com/acme/rls-audit');
    expect(repositoryPage('acme/rls-audit')).toBe('https://github.com/acme/rls-audit');
    expect(repositoryPage('git://example.test/acme/rls-audit.git')).toBe('https://example.test/acme/rls-audit');
    expect(repositoryPage({ url: 'file:../elsewhere' })).toBeUndefined();
    expect(repositoryPage(undefined)).toBeUndefined();
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { repository?: unknown; homepage?: unknown };
    expect(PACKAGE_README_URL).toBe(repositoryPage(manifest.repository) ?? (typeof manifest.homepage === 'string' ? manifest.homepage.replace(/#.*$/, '') : undefined));
  });

  it('a finding located at its policy points at that CREATE POLICY, not at the table', () => {
    const report = vulnerable.report!;
    const finding = report.findings.find((entry) => entry.check === 'rls-disabled')!;
    const atPolicy = { file: 'test/fixtures/rls-disabled/schema.sql', line: 9, column: 1, endLine: 9, endColumn: 121 };
    const run = checkSarif(renderSarif({ ...report, locations: { ...report.locations, [findingLocationKey(finding)]: atPolicy } })).runs[0]!;
    const result = run.results.find((entry) => entry.ruleId === 'rls-disabled')!;
    expect(result.locations[0]!.physicalLocation!.region).toEqual({ startLine: 9, startColumn: 1, endLine: 9, endColumn: 121 });
    expect(checkSarif(renderSarif(report)).runs[0]!.results.find((entry) => entry.ruleId === 'rls-disabled')!.locations[0]!.physicalLocation!.region.startLine).toBe(4);
    // The other results keep their own locations.
    const others = (log: SarifLog) => log.runs[0]!.results.filter((entry) => entry.ruleId !== 'rls-disabled').map((entry) => entry.locations);
    expect(others({ ...checkSarif(renderSarif(report)) })).toEqual(others({ ...checkSarif(renderSarif({ ...report, locations: { ...report.locations, [findingLocationKey(finding)]: atPolicy } })) }));
  });

  it('the schema check is real: it rejects what code scanning rejects', () => {
    const log = JSON.parse(renderSarif(vulnerable.report!)) as SarifLog;
    expect(sarifSchemaErrors(log)).toEqual([]);
    const broken = JSON.parse(JSON.stringify(log)) as { runs: { results: Record<string, unknown>[] }[] };
    delete broken.runs[0]!.results[0]!.message;
    broken.runs[0]!.results[1]!.level = 'critical';
    const errors = sarifSchemaErrors(broken).join('\n');
    expect(errors).toMatch(/\/runs\/0\/results\/0: must have required property 'message'/);
    expect(errors).toMatch(/\/runs\/0\/results\/1\/level: must be equal to one of the allowed values/);
  });
});

describe('JUnit', () => {
  it('is well-formed, with a suite per check that ran and counts that match, failing exactly the failing findings', async () => {
    const report = vulnerable.report!;
    const root = await checkJunit(renderJunit(report));
    const suites = root.children.map((suite) => suite.attributes.name);
    for (const rule of RULES) expect(suites).toContain(rule.meta.id);
    for (const check of ['read-isolation', 'missing-context', 'own-rows-hidden', 'role-owns-table', 'foreign-insert']) expect(suites).toContain(check);
    // Every finding of this fixture at or above high fails; they concern public.notes only.
    const failing = allFindings(report.findings).filter((finding) => ['critical', 'high'].includes(finding.severity));
    expect(report.summary.failing).toBe(report.findings.filter((finding) => ['critical', 'high'].includes(finding.severity)).length);
    expect(root.attributes.failures).toBe(String(new Set(failing.map((finding) => `${finding.check} ${objectSubject(finding.object)}`)).size));
    const failure = childrenNamed(testCase(root, 'read-isolation', 'public.notes')!, 'failure')[0]!;
    const finding = failing.find((entry) => entry.check === 'read-isolation')!;
    expect(failure.attributes).toMatchObject({ message: finding.message, type: 'critical' });
    expect(failure.text).toContain(finding.evidence.sql);
    expect(failure.text).toContain(finding.fix);
    // The secure tables pass; info findings are notes that do not fail.
    expect(testCase(root, 'read-isolation', 'public.projects')!.children).toEqual([]);
    const index = testCase(root, 'missing-tenant-index', 'public.projects')!;
    expect(childrenNamed(index, 'failure')).toEqual([]);
    expect(childrenNamed(index, 'system-out')[0]!.text).toMatch(/below the fail-on threshold, does not fail the run/);
    // Rules cover every relation; role rules the application role.
    expect(childrenNamed(root.children.find((suite) => suite.attributes.name === 'rls-disabled')!, 'testcase').map((entry) => entry.attributes.name).sort()).toEqual(report.relations.map((relation) => relation.name).sort());
    expect(testCase(root, 'bypassrls-role', 'app_user')).toBeDefined();
  });

  it('fails on what the scenario fails on: below failOn and accepted findings are notes, expired acceptances fail', async () => {
    const critical = accepting(vulnerable.report!, [], 'critical');
    const root = await checkJunit(renderJunit(critical));
    const criticalObjects = new Set(allFindings(critical.findings).filter((finding) => finding.severity === 'critical').map((finding) => `${finding.check} ${objectLabel(finding.object)}`));
    expect(root.attributes.failures).toBe(String(criticalObjects.size));
    // The high findings (folded into the critical defect or not) are notes below a critical threshold.
    const notes = root.children.flatMap((suite) => suite.children).filter((entry) => !childrenNamed(entry, 'failure').length).flatMap((entry) => childrenNamed(entry, 'system-out'));
    expect(notes.some((note) => /^note \(below the fail-on threshold/.test(note.text))).toBe(true);

    // One defect is one finding: accepting the rule accepts the probes' proofs of it as well.
    const accepted = accepting(vulnerable.report!, [{ check: 'rls-disabled', object: 'public.notes', reason: 'legacy table', expires: '2030-01-01' }]);
    const acceptedRoot = await checkJunit(renderJunit(accepted));
    for (const check of ['rls-disabled', 'read-isolation']) {
      const entry = testCase(acceptedRoot, check, 'public.notes')!;
      expect(childrenNamed(entry, 'failure')).toEqual([]);
      expect(childrenNamed(entry, 'system-out')[0]!.text).toMatch(/^note \(accepted, does not fail the run\)[\s\S]*accepted until 2030-01-01: legacy table/);
    }
    expect(accepted.summary.failing).toBe(vulnerable.report!.summary.failing - 1);

    // seed-original at failOn low: its low findings fail, its info findings do not.
    const low = accepting(original, [], 'low');
    const lowRoot = await checkJunit(renderJunit(low));
    const lowObjects = new Set(allFindings(low.findings).filter((finding) => finding.severity !== 'info').map((finding) => `${finding.check} ${objectLabel(finding.object)}`));
    expect(lowRoot.attributes.failures).toBe(String(lowObjects.size));
    expect((await checkJunit(renderJunit(original))).attributes.failures).toBe('0');
  });

  it('skips test cases whose probes could not verify the object', async () => {
    const report = vulnerable.report!;
    const probes = report.probes.map((record) =>
      record.check === 'read-isolation' && record.relation === 'public.projects' ? { ...record, outcome: 'unreliable' as const } : record,
    );
    const root = await checkJunit(renderJunit({ ...report, probes }));
    const skipped = childrenNamed(testCase(root, 'read-isolation', 'public.projects')!, 'skipped')[0]!;
    expect(skipped.attributes.message).toMatch(/^not verified \(3 unreliable\)/);
    expect(root.children.find((suite) => suite.attributes.name === 'read-isolation')!.attributes.skipped).toBe('1');
    // own-rows-hidden is judged on the same statements; the total is per suite (junit-10.xsd has no skipped on <testsuites>).
    expect(root.children.reduce((sum, suite) => sum + Number(suite.attributes.skipped), 0)).toBe(2);
  });

  it('escapes markup and strips characters XML 1.0 forbids', async () => {
    const base = allFindings(vulnerable.report!.findings).find((finding) => finding.check === 'read-isolation')!;
    const hostile: Finding = {
      ...base,
      object: { kind: 'table', name: 'public."we<ird>&\'name"' },
      message: 'rows ]]> <script>alert(1)</script> & "quotes"\u0000\u0007\u001b\ufffe end\nsecond line',
      fix: 'select 1; -- \u0001 </failure></testcase>',
      evidence: { ...base.evidence, sql: 'select \'\ud800\' -- lone surrogate' },
    };
    const xml = renderJunit({ ...vulnerable.report!, findings: [hostile] });
    const root = await checkJunit(xml);
    const failure = childrenNamed(testCase(root, 'read-isolation', 'public."we<ird>&\'name"')!, 'failure')[0]!;
    expect(failure.attributes.message).toBe('rows ]]> <script>alert(1)</script> & "quotes" end\nsecond line');
    expect(failure.text).toContain('select 1; --  </failure></testcase>');
    expect(xml).not.toMatch(/[\u0000\u0001\u0007\u001b\ufffe\ud800]/);
  });

  it('the schema check is real: junit-10.xsd rejects what Jenkins rejects', async () => {
    const xml = renderJunit(vulnerable.report!);
    expect(await junitSchemaErrors(xml)).toEqual([]);
    // The attribute rls-audit used to write on <testsuites>, and a test case without a name.
    expect((await junitSchemaErrors(xml.replace('<testsuites ', '<testsuites skipped="0" '))).join('\n')).toMatch(/attribute 'skipped': The attribute 'skipped' is not allowed/);
    expect((await junitSchemaErrors(xml.replace(/<testcase classname="([^"]*)" name="[^"]*"/, '<testcase classname="$1"'))).join('\n')).toMatch(/attribute 'name' is required/);
  });

  it('lint: the rules alone', async () => {
    const root = await checkJunit(renderJunit(linted));
    expect(root.children.map((suite) => suite.attributes.name)).toEqual(RULES.map((rule) => rule.meta.id));
    expect(childrenNamed(testCase(root, 'rls-disabled', 'public.notes')!, 'failure')).toHaveLength(1);
    expect(readdirSync(path.join(outDir, 'lint')).sort()).toEqual(['fix.sql', 'report.html', 'report.json', 'report.junit.xml']);
  });
});

/** Cells of a Markdown table row, split at pipes that are not backslash-escaped. */
function cells(row: string): string[] {
  return row.replace(/^\|/, '').replace(/\|$/, '').split(/(?<!\\)\|/).map((cell) => cell.trim());
}

/** The rows of the findings tables: four cells, the first a severity. */
function findingRows(markdown: string): string[][] {
  return markdown
    .split('\n')
    .filter((line) => line.startsWith('| '))
    .map(cells)
    .filter((row) => row.length === 4 && /^(critical|high|medium|low|info)\b/.test(row[0]!));
}

describe('Markdown', () => {
  it('summarises the verdict, counts, findings with fixes, info collapsed, and the isolation matrix', () => {
    const markdown = renderMarkdown(vulnerable.report!);
    expect(markdown).toMatch(/^## rls-audit: FAIL\n/);
    expect(markdown).toContain(`**FAIL**: ${vulnerable.report!.summary.failing} findings at or above high fail the run.`);
    const counts = vulnerable.report!.summary.findings;
    expect(markdown).toContain(`| critical | high | medium | low | info |\n|---:|---:|---:|---:|---:|\n| ${counts.critical} | ${counts.high} | ${counts.medium} | ${counts.low} | ${counts.info} |`);
    expect(findingRows(markdown).map((row) => `${row[1]} ${row[2]}`)).toEqual(vulnerable.report!.findings.map((finding) => `${finding.check} ${objectLabel(finding.object)}`));
    // info findings are inside a collapsed block, after the others
    const details = markdown.indexOf('<details><summary>4 info findings');
    expect(details).toBeGreaterThan(markdown.indexOf('| high | tenant-reassignment'));
    expect(markdown.indexOf('| info | missing-tenant-index')).toBeGreaterThan(details);
    expect(markdown).toContain('<details><summary>Fix: missing-tenant-index on public.notes</summary>\n\n```sql\ncreate index concurrently');
    expect(markdown).toContain('| public.notes | **leak (40)** | **leak (40)** | **leak (40)** | **leak (60)** | **leak (60)** | **leak (60)** |');
    expect(markdown).toMatch(/3 tenant-owned relations x 6 contexts \(3 tenants, 3 no-tenant states\): 6 leak, 12 pass\./);

    // seed-original fails nothing at high; a tenant cannot read its own row there, which makes it inconclusive.
    const passing = renderMarkdown(original);
    expect(original.summary.failing).toBe(0);
    expect(passing).toMatch(new RegExp(`^## rls-audit: ${original.summary.verdict.toUpperCase()}\n`));
    expect(renderMarkdown(linted)).not.toContain('Tenant x relation');
  });

  /** A report of `count` findings on tables of their own, severities in turn from critical to info, with long fixes. */
  function manyFindings(count: number, relations = 0): Report {
    const base = vulnerable.report!;
    const template = allFindings(base.findings).find((finding) => finding.check === 'read-isolation')!;
    const order: Severity[] = ['critical', 'high', 'medium', 'low', 'info'];
    const findings: Finding[] = Array.from({ length: count }, (_, index) => ({
      ...template,
      confirmedBy: [],
      related: [],
      severity: order[index % order.length]!,
      object: { kind: 'table', name: `public.table_${String(index).padStart(4, '0')}` },
      message: `Finding ${index}: ${'tenant A reads rows of tenant B through this table, '.repeat(2)}`,
      fix: `alter table public.table_${index} enable row level security;\n-- ${'and a long explanation of why '.repeat(8)}`,
    }));
    // Relations whose reads leak for every tenant: each is a row of the matrix.
    const leaking = Array.from({ length: relations }, (_, index) => `public.leaky_${String(index).padStart(4, '0')}`);
    return {
      ...base,
      findings,
      relations: [...base.relations, ...leaking.map((name) => ({ ...base.relations[0]!, name, tenancy: 'direct' }))],
      probes: [...base.probes, ...leaking.flatMap((relation) => base.tenants.map((tenant) => ({ check: 'read-isolation', relation, context: tenant.label, tenant: tenant.id, sql: 'select 1', outcome: 'leak' as const, rows: 9, foreignRows: 6, missingOwnRows: 0 })))],
    };
  }

  const fenceLines = (markdown: string) => markdown.split('\n').filter((line) => /^`{3,}/.test(line)).length;
  const lastLine = (markdown: string) => markdown.trimEnd().split('\n').pop()!;

  it('stays under GitHub\'s comment limit: fixes go first, least severe first, and the last line says so', () => {
    const report = manyFindings(150);
    const full = renderMarkdown(report, { limit: Number.POSITIVE_INFINITY });
    expect(full.length).toBeGreaterThan(MARKDOWN_LIMIT);
    const markdown = renderMarkdown(report);
    expect(markdown.length).toBeLessThanOrEqual(MARKDOWN_LIMIT);
    // Every finding keeps its row; fixes of the least severe go first: all critical ones stay, no info one does.
    expect(findingRows(markdown)).toHaveLength(150);
    const fixShown = (finding: Finding) => markdown.includes(`on ${objectLabel(finding.object)}</summary>`);
    expect(report.findings.filter((finding) => finding.severity === 'critical').every(fixShown)).toBe(true);
    expect(report.findings.filter((finding) => finding.severity === 'info').some(fixShown)).toBe(false);
    const rank = (finding: Finding) => SEVERITIES.indexOf(finding.severity);
    const kept = report.findings.filter(fixShown);
    const dropped = report.findings.filter((finding) => !fixShown(finding));
    expect(Math.max(...dropped.map(rank))).toBeLessThanOrEqual(Math.min(...kept.map(rank)));
    expect(lastLine(markdown)).toBe(`**Cut to fit a GitHub comment:** the fixes of ${dropped.length} findings. The full report: [report.html](report.html) and [report.json](report.json), next to this report.md.`);
    expect(fenceLines(markdown) % 2).toBe(0);
    expect(markdown.split('<details>').length).toBe(markdown.split('</details>').length);
    // The same report is cut the same way every time; a report that fits is not cut at all.
    expect(renderMarkdown(report)).toBe(markdown);
    expect(renderMarkdown(vulnerable.report!)).not.toContain('Cut to fit');
    expect(renderMarkdown(report, { limit: Number.POSITIVE_INFINITY })).toBe(full);
  });

  it('with many findings and relations, leaves out the matrix rows and then the least severe findings, and counts them', () => {
    const report = manyFindings(800, 300);
    const markdown = renderMarkdown(report);
    expect(markdown.length).toBeLessThanOrEqual(MARKDOWN_LIMIT);
    const listed = new Set(findingRows(markdown).map((row) => row[2]!.replace(/\\_/g, '_')));
    const leftOut = report.findings.filter((finding) => !listed.has(objectLabel(finding.object)));
    expect(leftOut.length).toBeGreaterThan(0);
    expect(listed.size + leftOut.length).toBe(800);
    // Least severe first, and among equals the later ones: what is listed is a prefix of each severity's findings.
    const rank = (finding: Finding) => SEVERITIES.indexOf(finding.severity);
    const shown = report.findings.filter((finding) => listed.has(objectLabel(finding.object)));
    expect(Math.max(...leftOut.map(rank))).toBeLessThanOrEqual(Math.min(...shown.map(rank)));
    for (const severity of SEVERITIES) {
      const ofSeverity = report.findings.filter((finding) => finding.severity === severity);
      const shownOfSeverity = ofSeverity.filter((finding) => listed.has(objectLabel(finding.object)));
      expect(shownOfSeverity).toEqual(ofSeverity.slice(0, shownOfSeverity.length));
    }
    expect(report.findings.filter((finding) => finding.severity === 'critical').every((finding) => listed.has(objectLabel(finding.object)))).toBe(true);
    // The matrix keeps its counts; its rows are gone before any finding's row.
    expect(markdown).toContain('### Tenant x relation isolation');
    expect(markdown).toContain(`\n301 relations with a cell that did not pass: see the full report.`);
    expect(markdown).not.toContain('| Relation |');
    const bySeverity = [...SEVERITIES].reverse().map((severity) => ({ severity, count: leftOut.filter((finding) => finding.severity === severity).length })).filter((entry) => entry.count);
    expect(lastLine(markdown)).toBe(
      `**Cut to fit a GitHub comment:** ${leftOut.length} findings of 800 left out (${bySeverity.map((entry) => `${entry.count} ${entry.severity}`).join(', ')}); ` +
        `the fixes of ${listed.size} other findings; 301 relations of the matrix. The full report: [report.html](report.html) and [report.json](report.json), next to this report.md.`,
    );
    expect(fenceLines(markdown) % 2).toBe(0);
    expect(markdown.split('<details>').length).toBe(markdown.split('</details>').length);
  });

  it('escapes table metacharacters and HTML in values, and fences fixes that contain backticks', () => {
    const base = allFindings(vulnerable.report!.findings).find((finding) => finding.check === 'read-isolation')!;
    const hostile: Finding = {
      ...base,
      object: { kind: 'table', name: 'public.a|b' },
      message: 'leaks <script>alert(1)</script> | and\nmore *bold* [link](http://x) & `code`',
      fix: 'select 1; -- ```\n</details><script>x</script>',
    };
    const markdown = renderMarkdown({ ...vulnerable.report!, findings: [hostile] });
    const outsideCode = markdown.replace(/^(`{3,})sql\n[\s\S]*?\n\1$/gm, '');
    expect(outsideCode).not.toMatch(/<script|<\/details><script/);
    expect(findingRows(markdown)).toEqual([[
      'critical',
      'read-isolation',
      'public.a\\|b',
      'leaks &lt;script&gt;alert(1)&lt;/script&gt; \\| and more \\*bold\\* \\[link\\](http://x) &amp; \\`code\\`',
    ]]);
    // The fix is verbatim inside a fence longer than its own backtick run, so it cannot end the block (or the
    // <details>) early; in a code block HTML is text.
    expect(markdown).toContain('<summary>Fix: read-isolation on public.a|b</summary>\n\n````sql\nselect 1; -- ```\n</details><script>x</script>\n````\n\n</details>');
  });
});
