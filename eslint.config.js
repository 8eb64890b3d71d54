// ESLint (flat config) for the web client: its modules run in the browser, its unit tests and
// this file under Node. `make js-check` runs it with prettier and the tests.

import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", ".venv/", "var/", "docs/", "build/"] },
  js.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "all" }],
    },
  },
  {
    files: ["web/static/**/*.js"],
    languageOptions: { globals: globals.browser },
  },
  {
    files: ["web/tests/**/*.js", "*.config.js"],
    languageOptions: { globals: globals.node },
  },
];
