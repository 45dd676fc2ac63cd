/**
 * Import rules of fedsfda (ARCHITECTURE.md), checked by `npm test` (test/dependency-rules.test.ts runs depcruise
 * on the tree, and on a planted violation to show that the check can fail). Test files (`*.test.ts`) may reach
 * across layers (a site-agent test may start a real coordinator); production code may not.
 */
const TESTS = '\\.test\\.ts$';
const OURS = '^(protocol|coordinator|site-agent|simulations|bin|scripts|test)/';

module.exports = {
  forbidden: [
    {
      name: 'protocol-imports-nothing-of-ours',
      comment: 'protocol/ (wire, contracts, common) is the shared base: it imports nothing from the rest of fedsfda.',
      severity: 'error',
      from: { path: '^protocol/', pathNot: TESTS },
      to: { path: OURS, pathNot: '^protocol/' },
    },
    {
      name: 'coordinator-imports-protocol-only',
      comment: 'The coordinator aggregates numbers: it imports protocol/ (contracts, common) only.',
      severity: 'error',
      from: { path: '^coordinator/', pathNot: TESTS },
      to: { path: OURS, pathNot: ['^coordinator/', '^protocol/'] },
    },
    {
      name: 'coordinator-never-tfjs',
      comment: 'House rule: the coordinator never loads TensorFlow.js (not even in its tests).',
      severity: 'error',
      from: { path: '^coordinator/' },
      to: { path: '@tensorflow' },
    },
    {
      name: 'site-agent-not-coordinator-or-simulations',
      comment: 'A hospital-side command loads no coordinator and no simulation code.',
      severity: 'error',
      from: { path: '^site-agent/', pathNot: TESTS },
      to: { path: '^(coordinator|simulations|test)/' },
    },
    {
      name: 'production-code-not-tests',
      comment: 'Fixtures and helpers under test/ serve tests only.',
      severity: 'error',
      from: { path: '^(protocol|coordinator|site-agent|simulations|bin)/', pathNot: TESTS },
      to: { path: '^test/' },
    },
    {
      name: 'cross-folder-through-barrel',
      comment:
        "From a concept folder (e.g. site-agent/adapt/), imports into another folder of ours go through that folder's index.ts (STYLE.md habit 6). " +
        "A file at the top of its own package (protocol/sodium.ts seen from protocol/secagg/) is imported directly: its barrel is the package's root barrel, which code inside the package never imports (STYLE.md).",
      severity: 'error',
      from: { path: '^(((?:protocol|coordinator|site-agent|simulations))/[a-z0-9-]+)/', pathNot: TESTS },
      to: { path: '^(protocol|coordinator|site-agent|simulations)/', pathNot: ['/index\\.ts$', '^$1/', '^$2/[^/]+\\.ts$'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^node_modules|/native/build/)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.mjs'] },
  },
};
