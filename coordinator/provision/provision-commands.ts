/**
 * `fedsfda consortium init` and `fedsfda enroll add|remove|list`: provisioning without writing keys, certificates
 * or allow-lists by hand (consortium.ts has the folder layout).
 *
 * @example
 * fedsfda consortium init --out consortium --name demo --host coordinator.example.org --host 10.0.0.5 --site hospital-a --site hospital-b --site hospital-c
 * fedsfda enroll add hospital-d --dir consortium        # a new bundle; every peers.json updated
 * fedsfda enroll list --dir consortium
 */
import { InvalidArgumentError, type Command } from 'commander';
import { join, resolve } from 'node:path';
import Table from 'cli-table3';
import { readFile } from 'node:fs/promises';

/** Loaded when a provisioning command runs (the X.509 library is not needed by any other command). */
const provision = async () => ({ ...(await import('./consortium.ts')), ...(await import('./tls-certificates.ts')) });

const collect = (v: string, acc: string[]): string[] => [...acc, ...v.split(',').map((x) => x.trim()).filter((x) => x !== '')];

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('an integer in [1, 65535]');
  return n;
}

export function registerProvisionCommands(program: Command): void {
  const consortium = program.command('consortium').description('provision a consortium: CA, coordinator TLS and identity, REST token, per-site bundles');
  consortium
    .command('init')
    .description('create a consortium folder: CA, coordinator identity/certificate/token/allow-list, and one ready bundle per site')
    .requiredOption('--out <dir>', 'the consortium folder to create')
    .requiredOption('--host <name|ip...>', 'coordinator host name or IP address the sites will use (repeat or comma-separate; all go into the TLS certificate, the first into the URL)', collect, [])
    .option('--name <name>', 'consortium name (certificate subjects)', 'fedsfda')
    .option('--port <n>', 'coordinator port', port, 8443)
    .option('--site <id...>', 'a site to provision now (repeat or comma-separate); more later with `fedsfda enroll add`', collect, [])
    .option('--rounds <n>', 'rounds in coordinator.json', port, 12)
    .option('--force', 'replace an existing consortium in --out')
    .action(async (o: { out: string; host: string[]; name: string; port: number; site: string[]; rounds: number; force?: boolean }) => {
      const { initConsortium, consortiumPaths, certificateHosts, coordinatorCommand } = await provision();
      const r = await initConsortium({ dir: o.out, name: o.name, hosts: o.host, port: o.port, sites: o.site, rounds: o.rounds, force: o.force === true });
      const p = consortiumPaths(o.out);
      const hosts = certificateHosts(await readFile(join(p.coordinator, 'tls.crt'), 'utf8'));
      console.log(`consortium "${r.consortium.name}" in ${resolve(o.out)}: coordinator ${r.consortium.url} (key ${r.coordinatorKey})`);
      console.log(`  TLS certificate for ${hosts.join(', ')}, signed by ${join(o.out, 'ca', 'ca.crt')} (keep ca/ca.key offline)`);
      console.log(`  REST token in ${join(o.out, 'coordinator', 'rest-token')} (owner-only)`);
      console.log(`  coordinator, from ${join(o.out, 'coordinator')} (after \`fedsfda model init ... --wire-out init.fsws\` there):\n    ${coordinatorCommand()}`);
      for (const s of r.sites) console.log(`  site ${s}: send ${p.site(s)}/ to it; there: ./run-site.sh /path/to/dataset`);
    });

  const enroll = program.command('enroll').description("manage a consortium's allow-list (the coordinator's enroll.json and every site's peers.json)");
  enroll
    .command('add <site-id>')
    .description('enroll a site: a new bundle with a fresh identity, or --key for a site that made its own (`fedsfda identity new`)')
    .option('--dir <dir>', 'consortium folder', '.')
    .option('--key <base64>', "the site's own public key (its identity stays at the site)")
    .action(async (siteId: string, o: { dir: string; key?: string }) => {
      const { enrollAdd, loadConsortium, consortiumPaths, siteCommand } = await provision();
      const r = await enrollAdd(o.dir, siteId, o.key);
      const c = await loadConsortium(o.dir);
      console.log(`enrolled ${siteId} (key ${r.site.publicKey}); bundle ${consortiumPaths(o.dir).site(siteId)}`);
      if (o.key !== undefined) console.log(`  its command line: ${siteCommand(c, siteId, '<its identity file>')}`);
      console.log(`  peers.json updated for ${r.peersUpdated.join(', ')}: send it to every site again; restart the coordinator to load the new allow-list`);
    });
  enroll
    .command('remove <site-id>')
    .description('remove a site from the allow-list and every peers.json, and delete its bundle')
    .option('--dir <dir>', 'consortium folder', '.')
    .action(async (siteId: string, o: { dir: string }) => {
      const { enrollRemove } = await provision();
      const r = await enrollRemove(o.dir, siteId);
      console.log(`removed ${siteId}; peers.json updated for ${r.peersUpdated.join(', ') || '(no site left)'}: send it to every site again; restart the coordinator`);
    });
  enroll
    .command('list')
    .description('the enrolled sites and their public keys')
    .option('--dir <dir>', 'consortium folder', '.')
    .option('--json', 'print JSON')
    .action(async (o: { dir: string; json?: boolean }) => {
      const { enrollList } = await provision();
      const sites = await enrollList(o.dir);
      if (o.json) {
        console.log(JSON.stringify(sites, null, 2));
        return;
      }
      const t = new Table({ head: ['site', 'public key', 'bundle'], style: { head: [], border: [] } });
      for (const s of sites) t.push([s.siteId, s.publicKey, s.bundle ? 'yes' : 'no']);
      console.log(t.toString());
    });
}
