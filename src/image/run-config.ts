/** Docker image config fields a spec may set (the Docker image spec's `config` object). */
export interface ImageRunConfig {
  Cmd?: string[];
  Entrypoint?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Volumes?: Record<string, Record<string, never>>;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

/**
 * The run config of a new image over a base: the base's config is inherited whole and the
 * spec's merged on top. `Env` merges by variable name (a base variable keeps its place, the
 * spec's value wins; new ones follow); `Labels`, `ExposedPorts` and `Volumes` merge by key;
 * every other field the spec sets (Cmd, Entrypoint, User, WorkingDir, StopSignal) replaces the
 * base's. Setting `Entrypoint` without `Cmd` clears an inherited `Cmd`, as Docker does.
 */
export function mergeRunConfig(base: ImageRunConfig | undefined, spec: ImageRunConfig | undefined): ImageRunConfig {
  const merged: ImageRunConfig & Record<string, unknown> = { ...(base ?? {}) };
  if (!spec) return merged;
  for (const [key, value] of Object.entries(spec) as Array<[keyof ImageRunConfig, unknown]>) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  if (base?.Env || spec.Env) {
    const env = new Map<string, string>();
    for (const entry of [...(base?.Env ?? []), ...(spec.Env ?? [])]) env.set(entry.split('=', 1)[0] ?? entry, entry);
    merged.Env = [...env.values()];
  }
  for (const key of ['Labels', 'ExposedPorts', 'Volumes'] as const) {
    if (base?.[key] && spec[key]) (merged as Record<string, unknown>)[key] = { ...base[key], ...spec[key] };
  }
  if (spec.Entrypoint !== undefined && spec.Cmd === undefined) delete merged.Cmd;
  return merged;
}
