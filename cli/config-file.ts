// Reads a pipeline config file (JSON or YAML) and validates it with the one schema; returns it as written (the
// workflow resolves the defaults, once the student family is known: see startPipeline).
import { promises as fs } from 'node:fs';
import * as YAML from 'yaml';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';

export async function readConfigFile(file: string): Promise<PipelineConfigInput> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read config file ${file}: ${err.code ?? err.message}`);
  });
  let raw: unknown;
  try {
    raw = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch (err) {
    throw new Error(`config file ${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
  if (raw === null || raw === undefined || (typeof raw === 'string' && raw.trim() === '')) {
    throw new Error(`config file ${file} is empty; write {} to run the embedded default`);
  }
  parsePipelineConfig(raw);
  return raw as PipelineConfigInput;
}
