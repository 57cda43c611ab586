// ESLint: typescript-eslint's strict, type-checked rules over the whole tree.
// Style is Prettier's (.prettierrc.json); ESLint judges correctness only.
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**', 'vagrant/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: __dirname },
    },
    rules: {
      // Numbers and booleans read fine in messages; objects and undefined do not.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // node:test's describe/it return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // Without noUncheckedIndexedAccess, TypeScript calls every array element and record entry defined, and this
      // rule then calls the tree's deliberate `?.` and `??` on them unnecessary: removing them would trade a
      // clear fallback for a crash. (Turning noUncheckedIndexedAccess on is the better fix; it is 67 edits, mostly in
      // the byte decoders.)
      '@typescript-eslint/no-unnecessary-condition': 'off',
      // An async method without await is how a test double, or an implementation that happens to be synchronous,
      // keeps an async interface (and turns its throws into rejections, as callers expect).
      '@typescript-eslint/require-await': 'off',
      // Unused on purpose: a leading underscore says so (destructuring a field away, an unused callback parameter).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
);
