// Artifact references: the only thing activities pass around. Safe to import from workflow code.
import { FailureType } from '../config/failure-types';
import { z } from 'zod';

export const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** Where the store keeps a blob, relative to its root: the uri of a ref must end with it. */
export function blobLocation(sha256: string): string {
  return `blobs/sha256/${sha256.slice(0, 2)}/${sha256}`;
}

// A ref may come from whoever starts a workflow: the store reads a blob by its sha256 only, and the uri
// must name that same blob (in some store's folder), so a ref cannot point at any other file.
export const ArtifactRefSchema = z
  .object({
    uri: z
      .string()
      .max(4096)
      .regex(/^file:\/\/\/[^\0?#]*$/, 'must be a file: URI of a blob in the artifact store'),
    sha256: z.string().regex(SHA256_PATTERN, 'sha256 must be 64 lowercase hex characters'),
    bytes: z.number().int().nonnegative(),
    kind: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/, 'letters, digits, dot, dash, underscore and slash only (1-128)'),
  })
  .strict()
  .refine((ref) => !SHA256_PATTERN.test(ref.sha256) || ref.uri.endsWith(`/${blobLocation(ref.sha256)}`), {
    message: 'must name the store blob of the ref\'s sha256 (…/blobs/sha256/<ab>/<sha256>)',
    path: ['uri'],
  });
export type ArtifactRef = z.infer<typeof ArtifactRefSchema>;

/** Error types carried by ApplicationFailure so that workflows can react (re-run the producer). */
export const ARTIFACT_MISSING = FailureType.ArtifactMissing;
export const ARTIFACT_CORRUPTED = FailureType.ArtifactCorrupted;

function isRef(value: unknown): value is ArtifactRef {
  return ArtifactRefSchema.safeParse(value).success;
}

/** Every ArtifactRef found anywhere inside a value. */
export function collectRefs(value: unknown): ArtifactRef[] {
  if (isRef(value)) return [value];
  if (Array.isArray(value)) return value.flatMap(collectRefs);
  if (value && typeof value === 'object') return Object.values(value).flatMap(collectRefs);
  return [];
}
