/**
 * How long an attack's build may take before it counts as not ending (it is then cancelled and
 * the test fails). Protected, every attack ends in seconds; unprotected, some run for minutes:
 * HOSTILE_ATTACK_S raises the wait to watch one to its end (attack 1 kills its worker after
 * about 3 minutes here).
 */
export const ATTACK_MS = Number(process.env.HOSTILE_ATTACK_S ?? 120) * 1000;
