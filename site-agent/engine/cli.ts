/**
 * `fedsfda doctor` and `fedsfda bench train`: what the engine selected and how fast it trains.
 */
import type { Command } from 'commander';
import { initEngine, type EngineInfo } from './select-backend.ts';
import { runTrainBench } from './bench/train-bench.ts';
import { runTentBench } from './bench/tent-bench.ts';
import { EngineError } from './errors.ts';
import { engineMode, plansEnabled } from './plan/unet-binding.ts';
import { symmetricBackend } from '../../protocol/index.ts';
import { u32Folder } from '../../protocol/secagg/index.ts';

/**
 * The convolution/GEMM code of the native addon. No BLAS or oneDNN is linked: on the project machine Debian's
 * OpenBLAS 0.3.21 (it takes the Zen 5 for a Haswell: AVX2 kernels) ran the plans' GEMM shapes 1.4-3x slower than
 * these kernels before counting im2col, and oneDNN 2.6 (PyTorch's, NHWC) was within ~15% of them either way per
 * layer (BENCHMARKS.md, engine section), so one code path stays.
 */
export const NATIVE_GEMM = "fedsfda's own register-blocked direct convolution/GEMM kernels (no BLAS linked)";

/** Which kernels model code runs on: compiled plans (fedsfda-native) or the backend's tfjs kernels op by op. */
export function kernelInfo(info: EngineInfo): string {
  if (plansEnabled()) return `compiled plans: U-Net steps as one native run (direct NHWC convolutions, ${info.simdDetail}, ${info.threads} threads; ${NATIVE_GEMM}); FEDSFDA_ENGINE=ops selects tfjs op by op`;
  if (info.backend === 'fedsfda-native' && engineMode() === 'ops') return `tfjs op by op on the native kernels (FEDSFDA_ENGINE=ops; ${NATIVE_GEMM})`;
  return `tfjs op by op on ${info.backend} (compiled plans need fedsfda-native)`;
}

/** The protocol's crypto path: libsodium or pure JS, and whether mask folding runs in WebAssembly SIMD. */
export function cryptoInfo(): { backend: string; reason: string; maskFoldSimd: boolean } {
  const b = symmetricBackend();
  return { backend: b.name, reason: b.reason, maskFoldSimd: u32Folder().simd };
}

function intOption(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
}

export function formatEngineInfo(info: EngineInfo): string {
  const lines = [
    `backend:   ${info.backend} (tfjs backend '${info.tfBackend}')`,
    `threads:   ${info.threads}`,
    `simd:      ${info.simd ? 'yes' : 'no'} (${info.simdDetail})`,
    'candidates:',
    ...info.tried.map((t) => `  ${t.ok ? 'ok  ' : 'skip'} ${t.name.padEnd(15)}${t.reason ? ` ${t.reason}` : ''}`),
    'versions:',
    ...Object.entries(info.versions).map(([k, v]) => `  ${k}: ${v}`),
  ];
  return lines.join('\n');
}

export function registerEngineCommands(program: Command): void {
  program
    .command('doctor')
    .description('show the compute backend chosen, why the others were skipped, threads/SIMD and versions')
    .option('--json', 'print machine-readable JSON')
    .option('--backend <name>', 'force a backend (also FEDSFDA_BACKEND)')
    .action(async (o: { json?: boolean; backend?: string }) => {
      const info = await initEngine({ probeAll: true, ...(o.backend ? { backend: o.backend } : {}) });
      const crypto = cryptoInfo();
      const kernels = kernelInfo(info);
      process.stdout.write(
        o.json
          ? JSON.stringify({ ...info, kernels, crypto }) + '\n'
          : formatEngineInfo(info) +
              `\nkernels:   ${kernels}` +
              `\ncrypto:    ${crypto.backend} (${crypto.reason}); mask folding ${crypto.maskFoldSimd ? 'WebAssembly SIMD' : 'JS loop'}\n`,
      );
    });

  // Other areas may add `bench <x>` subcommands too: share one `bench` group.
  const bench = program.commands.find((c) => c.name() === 'bench') ?? program.command('bench').description('benchmarks');
  bench
    .command('train')
    .description('time training steps of the reference U-Net on the selected backend vs one step on pure-JS cpu')
    .option('--json', 'print one JSON line')
    .option('--warmup <n>', 'warm-up steps', intOption('warmup'), 2)
    .option('--steps <n>', 'timed steps', intOption('steps'), 5)
    .option('--batch <n>', 'batch size', intOption('batch'), 8)
    .option('--size <n>', 'image height and width', intOption('size'), 64)
    .option('--backend <name>', 'force a backend (also FEDSFDA_BACKEND)')
    .option('--no-cpu-baseline', 'skip the (slow) one-step pure-JS cpu baseline')
    .option('--profile', 'also profile one step per kernel (table on stderr; kernelProfile in the JSON)')
    .option('--fused-bn', "reference model: batch norm via the engine's fused batchNormTrain")
    .option('--model <name>', "'reference' (engine's plain-ops U-Net, ~5.5 GFLOP/step) or 'unet' (site-agent/model)", 'reference')
    .option('--engine <path>', "'plan' (compiled plan, default on fedsfda-native) or 'ops' (tfjs op by op)")
    .option('--no-compare', 'do not also time the other engine path')
    .option('--no-pytorch', 'do not time the same network in PyTorch')
    .action(async (o: { json?: boolean; warmup: number; steps: number; batch: number; size: number; backend?: string; cpuBaseline: boolean; model: string; profile?: boolean; fusedBn?: boolean; engine?: string; compare: boolean; pytorch: boolean }) => {
      if (o.model !== 'reference' && o.model !== 'unet') throw new EngineError('BAD_ARGUMENT', `--model must be 'reference' or 'unet', got "${o.model}"`);
      if (o.engine !== undefined && o.engine !== 'plan' && o.engine !== 'ops') throw new EngineError('BAD_ARGUMENT', `--engine must be 'plan' or 'ops', got "${o.engine}"`);
      const r = await runTrainBench({
        warmup: o.warmup,
        steps: o.steps,
        batch: o.batch,
        size: o.size,
        cpuBaseline: o.cpuBaseline,
        model: o.model,
        profile: o.profile ?? false,
        fusedBn: o.fusedBn ?? false,
        compare: o.compare,
        pytorch: o.pytorch,
        ...(o.engine === 'plan' || o.engine === 'ops' ? { engine: o.engine } : {}),
        ...(o.backend ? { backend: o.backend } : {}),
        onStep: o.json ? undefined : (phase, i, ms) => process.stderr.write(`${phase} step ${i + 1}: ${ms.toFixed(1)} ms\n`),
      });
      if (r.kernelProfile) {
        const total = r.kernelProfile.reduce((a, k) => a + k.ms, 0);
        process.stderr.write(`per-kernel time of one profiled step on ${r.backend} (sum ${total.toFixed(1)} ms):\n`);
        for (const k of r.kernelProfile.slice(0, 25)) process.stderr.write(`  ${k.kernel.padEnd(28)}${k.ms.toFixed(1).padStart(10)} ms${k.cpuMs === undefined ? '' : ` (CPU ${k.cpuMs.toFixed(1)} ms)`} ${String(k.calls).padStart(5)} calls\n`);
      }
      if (o.json) {
        process.stdout.write(JSON.stringify(r) + '\n');
      } else {
        process.stdout.write(
          `backend ${r.backend} (${r.engine}): ${r.msPerStep} ms/step, ${r.gflops} GFLOP/s (${(r.flopsPerStep / 1e9).toFixed(2)} GFLOP/step), peak RSS ${r.peakRssMb} MB, load ${r.loadAvg.join(' -> ')}\n` +
            (r.planSpeedup === null ? '' : `op by op: ${r.opsMsPerStep} ms/step, compiled plan: ${r.planMsPerStep} ms/step -> ${r.planSpeedup}x\n`) +
            (r.pytorchMsPerStep === null ? `PyTorch: not measured (${r.pytorch})\n` : `PyTorch: ${r.pytorchMsPerStep} ms/step (${r.pytorch}) -> ratio ${r.ratioVsPytorch}; best step ${r.bestMsPerStep} vs ${r.pytorchBestMsPerStep} ms -> ${r.bestRatioVsPytorch}; CPU per step ${r.cpuMsPerStep} vs ${r.pytorchCpuMsPerStep} ms -> ${r.cpuRatioVsPytorch}\n`) +
            (r.cpuBaselineMsPerStep === null ? '' : `pure-JS cpu: ${r.cpuBaselineMsPerStep} ms/step -> speed-up ${r.speedupVsCpu}x\n`),
        );
      }
    });
  bench
    .command('tent')
    .description('time one TENT adaptation epoch (+ AdaBN pass) of the product U-Net on the compiled plan and op by op, same run')
    .option('--json', 'print one JSON line')
    .option('--slices <n>', 'target slices in the epoch', intOption('slices'), 64)
    .option('--batch <n>', 'batch size', intOption('batch'), 8)
    .option('--size <n>', 'slice height and width', intOption('size'), 64)
    .option('--backend <name>', 'force a backend (also FEDSFDA_BACKEND)')
    .action(async (o: { json?: boolean; slices: number; batch: number; size: number; backend?: string }) => {
      const r = await runTentBench({ slices: o.slices, batch: o.batch, size: o.size, ...(o.backend ? { backend: o.backend } : {}) });
      if (o.json) {
        process.stdout.write(JSON.stringify(r) + '\n');
        return;
      }
      process.stdout.write(
        `backend ${r.backend}, ${r.threads} threads, ${r.slices} slices of ${r.size}x${r.size}, batch ${r.batch}, load ${r.loadAvg.join(' -> ')}\n` +
          (r.planEpochMs === null ? 'compiled plan: not available on this backend\n' : `compiled plan: ${r.planEpochMs} ms (CPU ${r.planEpochCpuMs} ms)\n`) +
          `op by op:      ${r.opsEpochMs} ms (CPU ${r.opsEpochCpuMs} ms)` +
          (r.planSpeedup === null ? '\n' : ` -> plan ${r.planSpeedup}x faster (CPU ${r.planCpuSpeedup}x)\n`),
      );
    });
}
