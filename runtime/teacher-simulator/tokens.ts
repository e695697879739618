// Token estimates for `usage` and token-level `logprobs`. Not a real BPE: words, numbers and punctuation
// runs, with long pieces split every 6 characters (about 4 characters per token on English text).
import { SeededRandom } from './random';

export function estimateTokens(text: string): string[] {
  const pieces = text.match(/ ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]+|\s+/g) ?? [];
  return pieces.flatMap((p) => (p.length <= 6 ? [p] : (p.match(/.{1,6}/gs) ?? [])));
}

export function countTokens(text: string): number {
  return estimateTokens(text).length;
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

const FILLER = ['"', ' "', ',', ':', ' the', '_', ' a', '}', ' to', '.'];
const bytesOf = (token: string) => [...Buffer.from(token, 'utf8')];

/**
 * Plausible per-token logprobs for a generated text. `decisions` gives, for a character offset where the
 * sampled answer diverged from alternatives, the probability of the chosen option and the alternatives'
 * first tokens with their probabilities; every other token is near-certain.
 */
export function tokenLogprobs(
  text: string,
  topLogprobs: number,
  rng: SeededRandom,
  decisions: { offset: number; probability: number; alternatives: { token: string; probability: number }[] }[] = [],
): TokenLogprob[] {
  let offset = 0;
  return estimateTokens(text).map((token) => {
    const start = offset;
    offset += token.length;
    const decision = decisions.find((d) => d.offset >= start && d.offset < offset);
    const logprob = decision ? Math.log(Math.max(decision.probability, 1e-6)) : -rng.between(0.00001, 0.02);
    const others = decision
      ? decision.alternatives.filter((a) => a.token !== token).map((a) => ({ token: a.token, logprob: Math.log(Math.max(a.probability, 1e-6)) }))
      : [];
    for (const filler of FILLER) {
      if (others.length >= topLogprobs) break;
      if (filler !== token && !others.some((o) => o.token === filler)) others.push({ token: filler, logprob: logprob - rng.between(4, 12) });
    }
    const top = [{ token, logprob }, ...others]
      .sort((a, b) => b.logprob - a.logprob)
      .slice(0, topLogprobs)
      .map((t) => ({ ...t, bytes: bytesOf(t.token) }));
    return { token, logprob, bytes: bytesOf(token), top_logprobs: top };
  });
}
