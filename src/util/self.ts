import * as path from 'node:path';

/** slbctl's own entry point (dist/src/cli/main.js), to run slbctl in another namespace, a guest or a child. */
export const CLI_ENTRY = path.join(__dirname, '..', 'cli', 'main.js');
