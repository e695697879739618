// report.html is written with one tagged template, `html`, that escapes every interpolated value unless it
// is markup `html` built itself, so a field added later is escaped without anyone having to remember to.
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text or an attribute value (quoted) as HTML: `& < > " '` become entities. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);

/** Markup built by `html`: the only value `html` interpolates as it is. */
export class Html {
  constructor(private readonly markup: string) {}
  toString(): string {
    return this.markup;
  }
}

/** What `html` interpolates: markup as is; text and numbers escaped; lists joined; null, undefined and false as nothing. */
export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value instanceof Html) return value.toString();
  if (Array.isArray(value)) return (value as readonly HtmlValue[]).map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let markup = strings[0]!;
  values.forEach((value, i) => {
    markup += render(value) + strings[i + 1]!;
  });
  return new Html(markup);
}

/**
 * The start of a report page up to <body>: the title, and the styles every report shares (type, tables) with
 * `extraCss` for the page's own. Both the pipeline's report and the refresh's use it.
 */
export function pageStart(title: string, extraCss: string, maxWidthPx = 1000): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;color:#1d2433;max-width:${maxWidthPx}px;margin:2rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}.sub{color:#5b6475;margin-top:0}
table{border-collapse:collapse;margin:1rem 0}th,td{padding:.45rem .6rem;border-bottom:1px solid #e3e6ec;text-align:right}
th[scope=row],thead th:first-child{text-align:left}thead th{font-weight:600;background:#f5f7fa}
${new Html(extraCss)}
</style></head><body>`;
}
