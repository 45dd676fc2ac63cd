/**
 * The job file a simulation writes for its child processes: where the scenario, keys and initial model are.
 * Children read only this file (and the files it names), so every process can be re-run by hand.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';

export const simulationJobSchema = z.object({
  scenarioFile: z.string(),
  outDir: z.string(),
  coordinatorIdentityFile: z.string(),
  coordinatorPublicKey: z.string(),
  enrollmentFile: z.string(),
  initialWeightsFile: z.string(),
  sites: z.array(z.object({ id: z.string(), identityFile: z.string(), index: z.number().int().min(0) })),
  /** How many sites share one site process (the scenario's sitesPerProcess). */
  sitesPerProcess: z.number().int().min(1).default(1),
});

export type SimulationJob = z.infer<typeof simulationJobSchema>;

export async function readJob(file: string): Promise<SimulationJob> {
  return simulationJobSchema.parse(JSON.parse(await readFile(file, 'utf8')));
}
