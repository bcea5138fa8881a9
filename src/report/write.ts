import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { renderHtml } from './html.js';
import { renderJson } from './json.js';
import type { Report } from './model.js';

/** Write report.json and report.html into `outDir`; returns the paths written. */
export async function writeReports(report: Report, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const json = path.join(outDir, 'report.json');
  const html = path.join(outDir, 'report.html');
  await writeFile(json, renderJson(report));
  await writeFile(html, renderHtml(report));
  return [json, html];
}
