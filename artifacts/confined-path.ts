// Names that come from input (a config's name, a manifest's member paths) become paths only through these:
// the result stays inside its folder, or the join is refused.
import * as path from 'node:path';

/** Whether `file` is `folder` or lies below it (both resolved lexically; symlinks are not followed). */
export function isInside(file: string, folder: string): boolean {
  const relative = path.relative(path.resolve(folder), path.resolve(file));
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}

/**
 * Whether `rel` is a plain relative path: '/'-separated parts, none of them empty, "." or "..", no
 * backslash or NUL. Such a path joined to any folder stays inside it.
 */
export function isPlainRelativePath(rel: string): boolean {
  if (rel === '' || rel.includes('\0') || rel.includes('\\') || path.posix.isAbsolute(rel)) return false;
  return rel.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/** `folder` joined with `rel`, which must be a plain relative path that stays inside `folder`. */
export function joinInside(folder: string, rel: string): string {
  const joined = path.resolve(folder, rel);
  if (!isPlainRelativePath(rel) || !isInside(joined, folder) || joined === path.resolve(folder)) {
    throw new Error(`${JSON.stringify(rel)} is not a relative path inside its folder`);
  }
  return joined;
}
