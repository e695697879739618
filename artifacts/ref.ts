// Artifact references: the only thing activities pass around. Safe to import from workflow code.
import { FailureType } from '../config/failure-types';
import { z } from 'zod';

export const ArtifactRefSchema = z.object({
  uri: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex characters'),
  bytes: z.number().int().nonnegative(),
  kind: z.string().min(1),
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
