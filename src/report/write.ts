import path from 'node:path';
import { ensureDirectory, writeNamedFile } from './output.js';
import { loadParser } from '../analysis/parse.js';
import { renderFixScript } from './fix-script.js';
import { renderHtml } from './html.js';
import { renderJson } from './json.js';
import { renderJunit } from './junit.js';
import { renderMarkdown } from './markdown.js';
import { renderPgtap } from './pgtap.js';
import type { Report } from './model.js';
import { renderSarif } from './sarif.js';
import { DEFAULT_REPORT_FORMATS, REPORT_FORMATS, type ReportFormat } from './formats.js';

export { DEFAULT_REPORT_FORMATS, REPORT_FORMATS, type ReportFormat } from './formats.js';

const OUTPUTS: Record<ReportFormat, { file: string; render: (report: Report) => string }> = {
  json: { file: 'report.json', render: renderJson },
  html: { file: 'report.html', render: renderHtml },
  sarif: { file: 'report.sarif', render: renderSarif },
  junit: { file: 'report.junit.xml', render: renderJunit },
  markdown: { file: 'report.md', render: renderMarkdown },
  pgtap: { file: 'rls-audit.test.sql', render: renderPgtap },
};

/**
 * Write the report in each requested format into `outDir` (report.json, report.html, report.sarif,
 * report.junit.xml, report.md, rls-audit.test.sql); `formats` adds to report.json and report.html, which are always written, and so is fix.sql (the fixes
 * of the open findings, merged per object). `files` puts a format elsewhere than `outDir` (the pgTAP test in a
 * Supabase project's supabase/tests/). Returns the paths written.
 */
export async function writeReports(
  report: Report,
  outDir: string,
  formats: readonly ReportFormat[] = DEFAULT_REPORT_FORMATS,
  placed: Partial<Record<ReportFormat, string>> = {},
): Promise<string[]> {
  await ensureDirectory(outDir);
  const files: string[] = [];
  for (const format of REPORT_FORMATS.filter((entry) => DEFAULT_REPORT_FORMATS.includes(entry) || formats.includes(entry))) {
    const elsewhere = placed[format];
    if (elsewhere) await ensureDirectory(path.dirname(elsewhere));
    const file = elsewhere ?? path.join(outDir, OUTPUTS[format].file);
    await writeNamedFile(file, OUTPUTS[format].render(report));
    files.push(file);
  }
  await loadParser();
  const fixFile = path.join(outDir, 'fix.sql');
  await writeNamedFile(fixFile, renderFixScript(report));
  files.push(fixFile);
  return files;
}
