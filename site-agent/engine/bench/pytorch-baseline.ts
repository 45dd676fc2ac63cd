/**
 * The PyTorch side of the training benchmark: runs `pytorch_step.py` (shipped next to this file) with the same
 * network, batch, loss, optimizer and thread count, so that `ratioVsPytorch` is measured in one benchmark run
 * on one machine state. PyTorch is optional (Debian `python3-torch`): when python or torch is missing the
 * result says why and the benchmark reports null.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PYTORCH_SCRIPT = fileURLToPath(new URL('./pytorch_step.py', import.meta.url));

export interface PytorchStepOptions {
  model: 'reference' | 'unet';
  inChannels: number;
  numClasses: number;
  baseChannels: number;
  depth: number;
  batch: number;
  size: number;
  loss: 'ce' | 'ce+dice';
  optimizer: 'sgd' | 'momentum' | 'adam';
  lr: number;
  warmup: number;
  steps: number;
  threads: number;
}

export type PytorchStepResult =
  | { ok: true; msPerStep: number; bestMsPerStep: number; cpuMsPerStep: number; firstLoss: number; threads: number; torch: string; python: string }
  | { ok: false; reason: string };

/** FEDSFDA_PYTHON, else Debian's /usr/bin/python3 (where python3-torch installs), else python3 on PATH. */
export function pythonExecutable(): string {
  const env = process.env.FEDSFDA_PYTHON;
  if (env !== undefined && env !== '') return env;
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

function runPython(python: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; error?: Error }> {
  return new Promise((resolve) => {
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: args[args.indexOf('--threads') + 1] } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (error) => resolve({ code: null, stdout, stderr, error }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Times the same training step in PyTorch; never throws for a missing PyTorch (returns the reason). */
export async function runPytorchStep(o: PytorchStepOptions): Promise<PytorchStepResult> {
  const python = pythonExecutable();
  const args = [
    PYTORCH_SCRIPT,
    '--model', o.model,
    '--in-channels', String(o.inChannels),
    '--classes', String(o.numClasses),
    '--base', String(o.baseChannels),
    '--depth', String(o.depth),
    '--batch', String(o.batch),
    '--size', String(o.size),
    '--loss', o.loss,
    '--optimizer', o.optimizer,
    '--lr', String(o.lr),
    '--warmup', String(o.warmup),
    '--steps', String(o.steps),
    '--threads', String(o.threads),
  ];
  const r = await runPython(python, args);
  if (r.error) return { ok: false, reason: `${python} could not start: ${r.error.message}` };
  if (r.code !== 0) {
    const last = r.stderr.trim().split('\n').at(-1) ?? `exit code ${r.code}`;
    return { ok: false, reason: /No module named 'torch'/.test(r.stderr) ? `PyTorch not installed for ${python} (Debian: python3-torch)` : `${python} ${PYTORCH_SCRIPT} failed: ${last.slice(0, 200)}` };
  }
  try {
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as { msPerStep: number; bestMsPerStep: number; cpuMsPerStep: number; firstLoss: number; threads: number; torch: string };
    return { ok: true, msPerStep: j.msPerStep, bestMsPerStep: j.bestMsPerStep, cpuMsPerStep: j.cpuMsPerStep, firstLoss: j.firstLoss, threads: j.threads, torch: j.torch, python };
  } catch {
    return { ok: false, reason: `unreadable output from ${PYTORCH_SCRIPT}: ${r.stdout.slice(0, 200)}` };
  }
}
