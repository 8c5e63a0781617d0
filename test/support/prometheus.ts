/**
 * Scrapes a `/metrics` endpoint and parses it with the Prometheus project's own text-format
 * parser (prometheus_client.parser of the official Python client, Debian's
 * python3-prometheus-client): strict, and it keeps every labelled histogram series. (npm's
 * parse-prometheus-text-format, unmaintained since 2019, keeps only the last series of a
 * histogram with labels and drops its labels, count and sum.)
 */
import { run } from './run.ts';

export interface Sample {
  /** The sample's own name: `x_total`, `x_bucket`, `x_count`, ... */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const PARSE = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = text_string_to_metric_families(sys.stdin.read())
print(json.dumps([{"name": f.name, "type": f.type, "help": f.documentation,
  "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]} for f in families]))
`;

/** Debian's python, not whichever `python3` comes first on PATH (it has the parser). */
const PYTHON = '/usr/bin/python3';

export async function parseMetrics(text: string): Promise<Family[]> {
  const parsed = await run(PYTHON, ['-c', PARSE], { input: text });
  if (parsed.code !== 0) throw new Error(`not Prometheus text format:\n${parsed.stderr}`);
  return JSON.parse(parsed.stdout) as Family[];
}

export class Scrape {
  constructor(readonly families: Family[]) {}

  /** Sum of the samples named `name` whose labels include `labels` (0 when none). */
  value(name: string, labels: Record<string, string> = {}): number {
    let sum = 0;
    for (const family of this.families) {
      for (const sample of family.samples) {
        if (sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) sum += sample.value;
      }
    }
    return sum;
  }

  /** Every label set of the samples named `name`. */
  labelSets(name: string): Record<string, string>[] {
    return this.families.flatMap((f) => f.samples.filter((s) => s.name === name).map((s) => s.labels));
  }

  family(name: string): Family | undefined {
    return this.families.find((f) => f.name === name);
  }
}

/** GET `url`, check it is Prometheus text format 0.0.4, and parse it. */
export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${text}`);
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain; version=0.0.4')) throw new Error(`${url}: content-type ${type}`);
  return new Scrape(await parseMetrics(text));
}
