/**
 * The HTML report's markup: escaping, the `html` template tag (every interpolation escaped unless it is markup
 * built here), and the inline CSS.
 */

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes `& < > " '`, so the result is safe in element content and in quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] ?? character);
}

/** Markup built by this module; the only thing `html` interpolates unescaped. */
export class SafeHtml {
  constructor(readonly markup: string) {}
}

export type Fragment = SafeHtml | string | number | null | undefined | false | Fragment[];

function fragment(value: Fragment): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.markup;
  if (Array.isArray(value)) return value.map(fragment).join('');
  return escapeHtml(value);
}

export function html(strings: TemplateStringsArray, ...values: Fragment[]): SafeHtml {
  let markup = strings[0] ?? '';
  values.forEach((value, index) => {
    markup += fragment(value) + (strings[index + 1] ?? '');
  });
  return new SafeHtml(markup);
}
export const CSS = `
:root{--fg:#1a1d21;--muted:#555d66;--line:#d5d9de;--bg:#fff;--panel:#f5f7f9;--accent:#0b57d0}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);overflow-wrap:break-word}
main{max-width:1200px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.3rem;margin:2rem 0 .75rem;border-bottom:2px solid var(--line);padding-bottom:.25rem}
h3{font-size:1.1rem;margin:1.25rem 0 .5rem}
a{color:var(--accent)}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
code{overflow-wrap:anywhere}
pre{background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:.6rem .75rem;white-space:pre-wrap;overflow-wrap:anywhere;margin:.3rem 0;max-width:100%}
.muted{color:var(--muted)}
nav.sections{display:flex;flex-wrap:wrap;gap:.25rem 1rem;margin:.75rem 0}
dl.facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.25rem 1rem;margin:.75rem 0}
dl.facts dt{font-weight:600;color:var(--muted)}dl.facts dd{margin:0;min-width:0;overflow-wrap:anywhere}
.verdict{display:inline-block;font-weight:700;padding:.2rem .7rem;border-radius:4px;color:#fff;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.verdict.pass{background:#1e6e32}.verdict.fail{background:#b3261e}.verdict.inconclusive{background:#8a5a00}
.verdict-line{font-size:1.05rem}
.counts{display:flex;flex-wrap:wrap;gap:.5rem;list-style:none;padding:0;margin:.5rem 0}
.badge{display:inline-block;font-size:.78rem;font-weight:600;padding:.05rem .5rem;border-radius:.7rem;border:1px solid var(--line);background:var(--panel);margin:0 .3rem .15rem 0;overflow-wrap:anywhere}
.sev-critical{background:#7f0000;color:#fff;border-color:#7f0000}.sev-high{background:#c62828;color:#fff;border-color:#c62828}
.sev-medium{background:#ffb300;color:#000;border-color:#ffb300}.sev-low{background:#1565c0;color:#fff;border-color:#1565c0}
.sev-info{background:#e0e0e0;color:#000}
a.badge{text-decoration:none}
.badge.baseline-new,.badge.baseline-worse{background:#fff3e0;border-color:#e65100;color:#7a2e00}
.badge.accepted{background:#e8f5e9;border-color:#2e7d32;color:#1b5e20}.badge.expired{background:#fdecea;border-color:#b3261e;color:#8c1d18}
table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
thead th{background:var(--panel)}
.scroll{overflow-x:auto;max-width:100%}
table.matrix th[scope=row]{min-width:9rem;max-width:16rem;overflow-wrap:anywhere;position:sticky;left:0;z-index:1;background:var(--bg)}
table.matrix td.findings{min-width:6.5rem}table.matrix td.findings .badge{white-space:nowrap}
table.matrix .relation-facts{display:block;font-weight:400;font-size:.8rem;color:var(--muted)}
td.cell{text-align:center;min-width:5.5rem;font-weight:600;-webkit-print-color-adjust:exact;print-color-adjust:exact}
td.cell .count{display:block;font-weight:400;font-size:.75rem}
td.cell a{color:inherit;font-weight:700}
.cell.leak{background:#c62828;color:#fff}.cell.error{background:#ef6c00;color:#000}.cell.denied{background:#ffd54f;color:#000}
.cell.unreliable{background:repeating-linear-gradient(45deg,#cfd3d7 0 5px,#eef0f2 5px 10px);color:#000}
.cell.hidden{background:#b39ddb;color:#000}
.cell.inconclusive{background:#e3e7ec;color:#000;font-weight:400}
.cell.pass{background:#a5d6a7;color:#0d3b12}.cell.no-access,.cell.skipped{background:#f5f7f9;color:var(--muted);font-weight:400}
.cell.none{background:#fff;color:var(--muted);font-weight:400}
.legend{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;list-style:none;padding:0;font-size:.85rem}
.legend .cell{display:inline-block;min-width:1.6rem;height:1.1rem;border:1px solid var(--line);vertical-align:middle;margin-right:.35rem;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.families{font-size:.85rem}
fieldset.filter{border:1px solid var(--line);border-radius:4px;margin:.5rem 0;padding:.3rem .6rem .5rem;display:flex;flex-wrap:wrap;gap:.35rem;min-width:0}
fieldset.filter legend{font-weight:600;color:var(--muted);padding:0 .25rem}
.filter input{position:absolute;opacity:0;width:1px;height:1px;margin:0}
.filter label{display:inline-block;border:1px solid var(--line);border-radius:999px;padding:.1rem .65rem;font-size:.85rem;cursor:pointer;background:var(--bg);overflow-wrap:anywhere}
.filter input:checked+label{background:var(--accent);border-color:var(--accent);color:#fff}
.filter input:focus-visible+label{outline:2px solid var(--accent);outline-offset:2px}
.filter input:disabled+label{opacity:.45;cursor:default}
.no-match{display:none;font-style:italic}
details.severity-group{margin:.5rem 0}
details.severity-group>summary{margin:1rem 0 .5rem;cursor:pointer}details.severity-group>summary>h3{display:inline;margin:0}
details.finding{border:1px solid var(--line);border-left:6px solid var(--line);border-radius:4px;padding:.5rem 1rem;margin:.6rem 0;break-inside:avoid-page}
details.finding>summary{cursor:pointer}
details.finding[open]>summary{margin-bottom:.5rem}
details.finding:target{outline:3px solid var(--accent);outline-offset:2px}
.finding-title{font-weight:600}
.finding-message{display:block;margin-top:.15rem}
details.finding[data-severity=critical]{border-left-color:#7f0000}details.finding[data-severity=high]{border-left-color:#c62828}
details.finding[data-severity=medium]{border-left-color:#ffb300}details.finding[data-severity=low]{border-left-color:#1565c0}details.finding[data-severity=info]{border-left-color:#9e9e9e}
.label{font-weight:600;color:var(--muted);margin:.5rem 0 0}
details.statements{margin:.4rem 0}details.statements>summary{cursor:pointer}
ul.plain{padding-left:1.2rem}
@media (max-width:640px){main{padding:1rem .75rem}dl.facts{grid-template-columns:minmax(0,1fr)}dl.facts dt{margin-top:.35rem}h1{font-size:1.35rem}}
@page{size:A4 portrait;margin:12mm}
@media print{
body{font-size:11pt}main{max-width:none;padding:0}
.scroll{overflow:visible}
a{color:inherit;text-decoration:none}
.filters,nav.sections{display:none}
details::details-content{content-visibility:visible;display:block}
details>summary{list-style:none}details>summary::-webkit-details-marker{display:none}
code,pre{font-size:8.5pt}
table.matrix{width:100%;font-size:8pt}table.matrix th[scope=row]{min-width:0;max-width:none;position:static}table.matrix td.findings{min-width:0}
td.cell{min-width:0}
table.samples,table.log{width:100%;table-layout:fixed;font-size:8pt}table.samples td,table.samples th,table.log td,table.log th{overflow-wrap:anywhere}
.verdict,.badge,.cell,details.finding{-webkit-print-color-adjust:exact;print-color-adjust:exact}
h2,h3,summary{break-after:avoid}pre{break-inside:auto}
}
`;
