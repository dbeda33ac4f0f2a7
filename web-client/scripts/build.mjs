// Builds web-client/dist/: the SDK (tsc: ESM + .d.ts, no bundler, no runtime dependencies)
// and the demo page (demo/index.html, demo/demo.css and the compiled src/demo.ts). dist/ is
// committed so that `tidewire serve` embeds it without npm on the machine.
//
//   node scripts/build.mjs            build into dist/
//   node scripts/build.mjs --out DIR  build into DIR
//   node scripts/build.mjs --check    build into a temporary directory and fail (exit 1)
//                                     when dist/ differs from it: dist/ is stale
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
/** Files copied as they are from demo/ into the output. */
const STATIC = ['index.html', 'demo.css'];
/** Compiled files that are not part of the output (the demo script needs no typings). */
const DROP = ['demo.d.ts'];

function build(out) {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!fs.existsSync(tsc)) throw new Error(`${tsc} is missing: run npm ci in web-client first`);
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json'), '--outDir', out], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error(`tsc failed (exit ${r.status})`);
  for (const f of DROP) fs.rmSync(path.join(out, f), { force: true });
  for (const f of STATIC) fs.copyFileSync(path.join(root, 'demo', f), path.join(out, f));
}

function listing(dir) {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

/** Names of files that differ between two directories (missing on either side, or bytes). */
export function differences(a, b) {
  const names = new Set([...listing(a), ...listing(b)]);
  const out = [];
  for (const n of [...names].sort()) {
    const pa = path.join(a, n);
    const pb = path.join(b, n);
    if (!fs.existsSync(pa) || !fs.existsSync(pb) || !fs.readFileSync(pa).equals(fs.readFileSync(pb))) out.push(n);
  }
  return out;
}

const args = process.argv.slice(2);
if (args[0] === '--check') {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tidewire-web-client-'));
  try {
    build(tmp);
    const diff = differences(dist, tmp);
    if (diff.length) {
      console.error(`web-client/dist is stale (${diff.join(', ')}): run \`npm run build\` in web-client and commit dist/`);
      process.exit(1);
    }
    console.log('web-client/dist is up to date');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
} else {
  const i = args.indexOf('--out');
  const out = i >= 0 && args[i + 1] ? path.resolve(args[i + 1]) : dist;
  build(out);
  console.log(`built ${path.relative(process.cwd(), out) || '.'}: ${listing(out).join(', ')}`);
}
