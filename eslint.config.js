// @ts-check
/**
 * ESLint, for problems the compiler does not catch: promises left floating, unsafe `any`, values
 * that are not errors thrown, switches that miss a case, imports across the layers. Formatting is
 * Prettier's business (.prettierrc.json); no rule here is about layout.
 *
 * The rules that need types (typescript-eslint's type-checked sets) read them from
 * tsconfig.json and tsconfig.test.json (sources and tests), src/report/client/tsconfig.json (the
 * report page) and src/web/client/tsconfig.json (the visualizer's page and worker).
 */

import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const typeChecked = defineConfig(
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        project: [
          './tsconfig.json',
          './tsconfig.test.json',
          './src/report/client/tsconfig.json',
          './src/web/client/tsconfig.json',
        ],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // The project's convention for a parameter or binding kept on purpose (as tsc's noUnused*).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
        },
      ],
      // Type-only imports vanish from the output (isolatedModules); written inline, as the code does.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      eqeqeq: ['error', 'always'],
      // A switch over a union or an enum (Op, St, ...) names every case or has a default.
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      // `return promise` inside try skips the catch and finally when it rejects.
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      // [3, 20, 100].sort() sorts as strings.
      '@typescript-eslint/require-array-sort-compare': ['error', { ignoreStringArrays: true }],
      '@typescript-eslint/no-meaningless-void-operator': 'error',
      '@typescript-eslint/no-deprecated': 'error',
    },
  },
  {
    // Every fast-check property runs with the shared, reproducible seed (test/helpers/fc.ts).
    files: ['test/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector:
            "CallExpression[callee.object.name='fc'][callee.property.name=/^(assert|check)$/]:not([arguments.1.callee.name='fcParams'])",
          message: 'Pass fcParams(...) (test/helpers/fc.ts) as the parameters: the run seed.',
        },
      ],
    },
  },
  {
    // The page's script is a classic script, not a module (see its header): it can name the
    // types of its data only with import() types.
    files: ['src/report/client/page.ts'],
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { disallowTypeAnnotations: false }],
    },
  },
  {
    // The simulation core and the kernel model talk to nothing above them (docs/architecture.md):
    // the core imports only itself and the kernel model, the kernel model only itself.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(?!\\./|\\.\\./kernel/)',
              message: 'src/core imports only src/core and src/kernel.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/kernel/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '^(?!\\./)', message: 'src/kernel imports only src/kernel.' }] },
      ],
    },
  },
);

export default defineConfig(
  { ignores: ['dist/', 'test/native/build/'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  // The configuration files themselves: plain JavaScript, checked without types.
  { files: ['**/*.js'], extends: [js.configs.recommended] },
  typeChecked,
);
