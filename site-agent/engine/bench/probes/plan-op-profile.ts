// Probe (issue 16): per-op wall and CPU time of the compiled reference training step (every conv, BN, pool... with
// its shape), mean and minimum over REPS runs (default 10), summed by op kind. Development tool: it reaches into
// CompiledUNet's private offset/net to build the program itself. Run: REPS=30 npx tsx site-agent/engine/bench/probes/plan-op-profile.ts
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../select-backend.ts';
import { createReferenceParams, randomBatch, REFERENCE_CONFIG } from '../reference-unet.ts';
import { CompiledUNet } from '../../plan/compiled-unet.ts';
import { referenceUNetFamily } from '../../plan/unet-family.ts';
import { planUNet } from '../../plan/unet-plan.ts';
import { loadNativeAddon } from '../../native-addon.ts';
import { OpCode, OP_WORDS, Hyper } from '../../plan/plan-ops.ts';
import { emptyHyper } from '../../plan/compiled-unet.ts';

await initEngine();
const c = REFERENCE_CONFIG;
const B = Number(process.env.B ?? 8), S = 64, reps = Number(process.env.REPS ?? 10);
const { x, y } = randomBatch(c, B, S, S, 99);
const labels = tf.argMax(y, -1).dataSync() as Int32Array;
const params = createReferenceParams(c, 1234);
const cu = new CompiledUNet(referenceUNetFamily(c), params);
const plan = planUNet(cu.family, { N: B, H: S, W: S }, { kind: 'train', loss: 'ce', bn: 'batch', trainable: new Set(params.keys()) }, (n) => (cu as any).offset(n));
const addon = loadNativeAddon();
if (!addon.ok) throw new Error('no addon');
const prog = new addon.addon.PlanProgram((cu as any).net, plan.encoded.words, plan.encoded.arenaFloats);
(cu as any).net.resetOptimizer(0);
const h = emptyHyper(); h[Hyper.optKind] = 1; h[Hyper.lr] = 0.01;
const xs = x.dataSync() as Float32Array;
const names = new Map<number, string>(Object.entries(OpCode).map(([k, v]) => [v, k]));
const nOps = plan.encoded.words.length / OP_WORDS;
const wall = new Float64Array(nOps), cpu = new Float64Array(nOps), cmin = new Float64Array(nOps).fill(1e9);
for (let i = 0; i < 3; i++) prog.run(xs, labels, h);
const t0 = performance.now();
for (let r = 0; r < reps; r++) {
  h[Hyper.step] = r + 1;
  prog.run(xs, labels, h);
  const p = prog.profile();
  for (let i = 0; i < nOps; i++) { wall[i] += p[3 * i + 1]; cpu[i] += p[3 * i + 2]; cmin[i] = Math.min(cmin[i], p[3 * i + 2]); }
}
const per = (performance.now() - t0) / reps;
const rows: string[] = [];
const byKind = new Map<string, [number, number, number]>();
let tmin = 0;
let tw = 0, tc = 0;
for (let i = 0; i < nOps; i++) {
  const w = plan.encoded.words.subarray(i * OP_WORDS, (i + 1) * OP_WORDS);
  const kind = names.get(w[0])!;
  const desc = `${kind} k=${w[1]} cin=${w[2]} cout=${w[3]} a=${w[15]}x${w[16]}x${w[17]}x${w[18]} flags=${w[5]}`;
  const ww = wall[i] / reps, cc = cpu[i] / reps;
  tw += ww; tc += cc;
  const k = byKind.get(kind) ?? [0, 0, 0]; k[0] += ww; k[1] += cc; k[2] += cmin[i]; tmin += cmin[i]; byKind.set(kind, k);
  rows.push(`${String(i).padStart(3)} ${desc.padEnd(70)} ${ww.toFixed(2).padStart(7)} ms  cpu ${cc.toFixed(2).padStart(7)}`);
}
console.log(rows.join('\n'));
console.log(`--- by kind (mean of ${reps} runs), wall ${tw.toFixed(1)} ms, cpu ${tc.toFixed(1)} ms, sum of per-op min cpu ${tmin.toFixed(1)} ms, loop ${per.toFixed(1)} ms/step`);
for (const [k, [w, cc, mn]] of [...byKind].sort((a, b) => b[1][0] - a[1][0])) console.log(`${k.padEnd(16)} ${w.toFixed(2).padStart(7)} ms (${(100 * w / tw).toFixed(1)}%)  cpu ${cc.toFixed(2)} min-cpu ${mn.toFixed(2)}`);
