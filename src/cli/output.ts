/** How the CLI words things: problems, builds. */
import type { ProblemBody } from '../problem.ts';
import type { BuildView } from './build-events.ts';
import { formatBytes, formatSeconds } from './reporter.ts';

/** An RFC 9457 problem as lines: title and status, detail, then each of `errors`. */
export function describeProblem(problem: ProblemBody): string {
  const lines = [`error: ${problem.title} (${problem.status})${problem.detail ? `: ${problem.detail}` : ''}`];
  for (const e of problem.errors ?? []) lines.push(`  ${'pointer' in e ? e.pointer || '/' : `?${e.parameter}`}: ${e.message}`);
  return lines.join('\n');
}

export function describeBuild(build: BuildView): string {
  const lines = [`build ${build.id}: ${build.status}${build.cached ? ` (cached, from build ${build.cachedFrom})` : ''}`];
  lines.push(`  image     ${build.spec.name}:${build.spec.tag} (${build.spec.format}, ${build.spec.compression})`);
  lines.push(`  created   ${build.createdAt}`);
  if (build.startedAt) lines.push(`  started   ${build.startedAt}`);
  if (build.finishedAt) {
    const took = Date.parse(build.finishedAt) - Date.parse(build.startedAt ?? build.createdAt);
    lines.push(`  finished  ${build.finishedAt} (${formatSeconds(took)})`);
  }
  if (build.result) {
    lines.push(`  image id  ${build.result.imageId}`);
    lines.push(`  layers    ${build.result.diffIds.length}`);
    lines.push(`  archive   ${build.result.archive.digest}, ${formatBytes(build.result.archive.size)}`);
  }
  for (const [ref, push] of Object.entries(build.pushes ?? {})) {
    lines.push(`  push      ${ref}: ${push.status}${push.manifestDigest ? ` ${push.manifestDigest}` : ''}${push.error ? `: ${push.error}` : ''}`);
  }
  if (build.error) lines.push(describeProblem(build.error).replace(/^/gm, '  '));
  return lines.join('\n');
}
