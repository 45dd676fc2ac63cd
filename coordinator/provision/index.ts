export { ProvisionError, createCa, issueServerCertificate, certificateHosts, subjectAltName, type PemPair } from './tls-certificates.ts';
export {
  initConsortium,
  enrollAdd,
  enrollRemove,
  enrollList,
  loadConsortium,
  consortiumPaths,
  coordinatorCommand,
  siteCommand,
  consortiumFileSchema,
  CONSORTIUM_FILE,
  type ConsortiumFile,
  type InitConsortiumOptions,
  type InitConsortiumResult,
  type EnrolledSite,
} from './consortium.ts';
export { registerProvisionCommands } from './provision-commands.ts';
