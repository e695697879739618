// The compact call format, a contract shared with the Python trainer:
//   name(key="value", key2="value2")     name()     (keys in the given order, separator ", ")
// Each value is printed as a JSON string literal (JSON.stringify). A slot type may repeat
// (`qa_currency(currency_name="dollars", currency_name="euros")`): the format is a sequence of pairs.

export interface CallArgument {
  key: string;
  value: string;
}

/** One function call: the name and its slot arguments in order (a key may repeat). */
export interface Call {
  name: string;
  args: CallArgument[];
}

export type CallParseResult = { ok: true; call: Call } | { ok: false; error: string };

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isIdentifier(text: string): boolean {
  return IDENTIFIER.test(text);
}

export function printCall(call: Call): string {
  return `${call.name}(${call.args.map((a) => `${a.key}=${JSON.stringify(a.value)}`).join(', ')})`;
}

/** Parses the compact format. Whitespace around tokens is tolerated; errors are values, never throws. */
export function parseCall(text: string): CallParseResult {
  const s = text.trim();
  let i = 0;
  const fail = (error: string): CallParseResult => ({ ok: false, error });
  const at = () => `column ${i + 1}`;
  const skipSpace = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  const readIdentifier = (): string => {
    const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(i));
    if (!match) return '';
    i += match[0].length;
    return match[0];
  };

  if (s === '') return fail('empty text: expected a call like name(key="value")');
  const name = readIdentifier();
  if (!name) return fail(`expected a function name at ${at()}, found ${JSON.stringify(s.slice(i, i + 12))}`);
  skipSpace();
  if (s[i] !== '(') return fail(`expected "(" after function name "${name}" at ${at()}`);
  i++;
  skipSpace();
  const args: CallArgument[] = [];
  if (s[i] === ')') {
    i++;
  } else {
    for (;;) {
      skipSpace();
      const key = readIdentifier();
      if (!key) return fail(`expected a slot name at ${at()} in call to "${name}"`);
      skipSpace();
      if (s[i] !== '=') return fail(`expected "=" after slot name "${key}" at ${at()}`);
      i++;
      skipSpace();
      if (s[i] !== '"') return fail(`expected a JSON string value for slot "${key}" at ${at()}`);
      let end = i + 1;
      while (end < s.length && s[end] !== '"') end += s[end] === '\\' ? 2 : 1;
      if (end >= s.length) return fail(`unterminated string value for slot "${key}" starting at ${at()}`);
      let value: unknown;
      try {
        value = JSON.parse(s.slice(i, end + 1));
      } catch (err) {
        return fail(`invalid JSON string for slot "${key}" at ${at()}: ${(err as Error).message}`);
      }
      args.push({ key, value: value as string });
      i = end + 1;
      skipSpace();
      if (s[i] === ',') {
        i++;
        continue;
      }
      if (s[i] === ')') {
        i++;
        break;
      }
      if (i >= s.length) return fail(`missing ")" at the end of the call to "${name}"`);
      return fail(`expected "," or ")" after the value of slot "${key}" at ${at()}`);
    }
  }
  skipSpace();
  if (i < s.length) return fail(`unexpected text after ")" at ${at()}: ${JSON.stringify(s.slice(i, i + 20))}`);
  return { ok: true, call: { name, args } };
}

/** Slot values compare after trimming and collapsing whitespace (case is significant). */
export function normalizeSlotValue(value: string): string {
  return value.trim().replace(/\s+/g, ' ');
}

/**
 * The arguments object of an OpenAI tool call for this call: a repeated key becomes an array of its
 * values in order. Values are passed through untouched so that schema validation sees them as they are.
 */
export function callArgumentsObject(call: Call): Record<string, unknown> {
  const grouped = new Map<string, unknown[]>();
  for (const { key, value } of call.args) {
    const values = grouped.get(key) ?? [];
    values.push(value);
    grouped.set(key, values);
  }
  return Object.fromEntries([...grouped].map(([key, values]) => [key, values.length === 1 ? values[0] : values]));
}

/** The inverse of callArgumentsObject for a validated arguments object (string or string[] values). */
export function callFromArgumentsObject(name: string, args: Record<string, string | string[]>): Call {
  return {
    name,
    args: Object.entries(args).flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map((v) => ({ key, value: v }))),
  };
}
