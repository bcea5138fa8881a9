/** Every report format, in the order they are written; json is canonical and always written. */
export const REPORT_FORMATS = ['json', 'html', 'sarif', 'junit', 'markdown', 'pgtap'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];
export const DEFAULT_REPORT_FORMATS: readonly ReportFormat[] = ['json', 'html'];
