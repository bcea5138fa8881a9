import type { Report } from './model.js';

/** The canonical form: every other format is a function of this. */
export function renderJson(report: Report): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
