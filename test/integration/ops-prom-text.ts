// A strict parser for the Prometheus text exposition format (0.0.4), enough to read what prom-client
// writes: HELP/TYPE comments and samples `name{label="value",...} number`. Any line it cannot read is an
// error, so a malformed /metrics fails the test instead of being skipped over by a loose grep.

export interface Sample {
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

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', help: '', samples: [] }));
    return f;
  };
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line === '') return;
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (!m) throw new Error(`bad comment at ${where}`);
      if (m[1] === 'HELP') family(m[2]).help = m[3];
      else {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(m[3])) throw new Error(`bad type at ${where}`);
        family(m[2]).type = m[3];
      }
      return;
    }
    const nm = NAME.exec(line);
    if (!nm) throw new Error(`bad metric name at ${where}`);
    const name = nm[0];
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      while (!rest.startsWith('}')) {
        const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,?)/.exec(rest);
        if (!lm) throw new Error(`bad label at ${where}`);
        labels[lm[1]] = lm[2].replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
        rest = rest.slice(lm[0].length);
        if (!lm[3] && !rest.startsWith('}')) throw new Error(`missing comma at ${where}`);
      }
      rest = rest.slice(1);
    }
    const vm = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (!vm) throw new Error(`bad sample at ${where}`);
    // Values are read as Go's strconv.ParseFloat reads them (Prometheus does): NaN and Inf in any case
    // (prom-client writes "Nan").
    const special: Record<string, number> = { nan: NaN, '+inf': Infinity, inf: Infinity, '-inf': -Infinity };
    const lower = vm[1].toLowerCase();
    const value = lower in special ? special[lower] : Number(vm[1]);
    if (Number.isNaN(value) && lower !== 'nan') throw new Error(`bad value at ${where}`);
    // Histogram and summary samples belong to the family without their suffix.
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const owner = families.has(name) ? name : families.has(base) ? base : name;
    family(owner).samples.push({ name, labels, value });
  });
  return families;
}

/** Sum of the samples called `name` whose labels include `labels`. */
export function sampleSum(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  let n = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) n += s.value;
    }
  }
  return n;
}

export async function scrape(port: number): Promise<Map<string, Family>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  if (!/^text\/plain; version=0\.0\.4/.test(res.headers.get('content-type') ?? '')) throw new Error(`unexpected content-type ${res.headers.get('content-type')}`);
  return parsePrometheusText(await res.text());
}
