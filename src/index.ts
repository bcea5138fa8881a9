/**
 * rls-audit as a library: `audit(scenario)` runs the whole audit and returns the report (a partial scenario
 * is enough: the schema's defaults fill the rest); `lint(scenario)` runs the static rules alone. Every
 * renderer is a pure function of the report. `createAuditDatabase()` keeps one cluster for a test file;
 * `rls-audit/vitest` adds the matchers `toIsolateTenants()` and `toBelongTo(tenant)`.
 */
export { AUDIT_PHASES, audit, lint, type AuditOptions, type AuditPhase, type AuditProgress } from './audit.js';
export { allChecks, renderChecks } from './findings/checks.js';
export { AuditError } from './errors.js';
export type { CheckMeta, Evidence, Finding, FindingObject, ObjectKind, SampleRow } from './findings/finding.js';
export type { Cause, CauseKind } from './findings/cause.js';
export type { Note } from './report/notes.js';
export { planNoteText, type PlanNote } from './plan/notes.js';
export { createAuditDatabase, type AuditDatabase, type SeededUser, type TenantConnection, type TenantQueryResult } from './library/database.js';
export { attributeRow, type AttributedRow, type RowOwner, type SeededTenant } from './library/attribution.js';
export { toBelongTo, toIsolateTenants, type MatcherResult } from './library/matchers.js';
export type { Catalog, Relation, Policy, Role, FunctionInfo } from './catalog/types.js';
export type { TenancyPlan, RelationPlan, Tenancy } from './plan/tenancy.js';
export type { ProbeOutcome, ProbeRecord } from './probes/types.js';
export { PROBES } from './probes/registry.js';
export { defineProbe, type Probe, type ProbeContext, type ProbeDefinition, type ProbeReport } from './probes/types.js';
export { defineRule, type Rule, type RuleContext, type RuleDefinition, type RuleReport } from './rules/types.js';
export { RULES } from './rules/registry.js';
export { renderConsole } from './report/console.js';
export { renderHtml } from './report/html.js';
export { renderJson } from './report/json.js';
export { renderJunit } from './report/junit.js';
export { MARKDOWN_LIMIT, renderMarkdown, type MarkdownOptions } from './report/markdown.js';
export { REPORT_SCHEMA_VERSION, type Report, type RelationReport } from './report/model.js';
export { renderSarif, toSarif, type SarifLog, type SarifOptions } from './report/sarif.js';
export { DEFAULT_REPORT_FORMATS, REPORT_FORMATS, writeReports, type ReportFormat } from './report/write.js';
export { findConfigFile, loadScenario, parseScenario, type ScenarioOverrides } from './scenario/load.js';
export { scenarioSchema, type Acceptance, type NamedQuery, type Scenario, type ScenarioInput } from './scenario/schema.js';
export { SEVERITIES, type Severity } from './findings/severity.js';
export { startEmbedded } from './target/embedded.js';
export type { Target, TargetKind } from './target/types.js';
