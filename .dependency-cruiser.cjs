/**
 * Dependency rules (issue 14), checked by `npm run lint:deps` and in CI:
 * no import cycles; the image model and the blob store sit below the build path, and the build
 * path below the queue and metrics; shipped code uses no devDependency and no test helper; no
 * module that nothing imports (browser files served as they are excepted).
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: the modules cannot be read (or loaded) one before the other.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'image-store-below-build-path',
      severity: 'error',
      comment: 'src/image/ and src/store/ are the model and storage the build path uses; they import nothing from it.',
      from: { path: '^src/(image|store)/' },
      to: { path: '^src/(api|builds|queue)/' },
    },
    {
      name: 'builds-without-queue-and-metrics',
      severity: 'error',
      comment: 'src/builds/ plans and runs a build; the job processors that tie it to the queue and metrics live outside it.',
      from: { path: '^src/builds/' },
      to: { path: '^src/(queue|metrics)/' },
    },
    {
      name: 'no-dev-deps-in-shipped-code',
      severity: 'error',
      comment: 'src/ and workers/ run in the image, where devDependencies are not installed (type-only imports are erased).',
      from: { path: '^(src|workers|bin)/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-tests-in-shipped-code',
      severity: 'error',
      comment: 'Shipped code does not import test or bench helpers.',
      from: { path: '^(src|workers|bin)/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to no file or package.',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-orphans',
      severity: 'error',
      comment: 'A module nothing imports and that imports nothing: dead, or an entry point to list here.',
      from: {
        orphan: true,
        pathNot: ['\\.d\\.m?ts$', '(^|/)tsconfig\\.json$', '^src/dashboard/', '^src/api/docs-page/'],
      },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
