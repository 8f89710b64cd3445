/** Command ids, shared by the plugins, the panel and the status bar. */
export const CommandIDs = {
  runCell: 'jupyter-sandbox:run-cell',
  runAll: 'jupyter-sandbox:run-all',
  unmark: 'jupyter-sandbox:unmark-cells',
  openPanel: 'jupyter-sandbox:open-panel',
  create: 'jupyter-sandbox:create',
  remove: 'jupyter-sandbox:remove',
  interrupt: 'jupyter-sandbox:interrupt',
  restart: 'jupyter-sandbox:restart',
  upload: 'jupyter-sandbox:upload',
  logs: 'jupyter-sandbox:show-logs',
  copyId: 'jupyter-sandbox:copy-id',
  terminal: 'jupyter-sandbox:open-terminal',
  newKey: 'jupyter-sandbox:new-api-key',
  help: 'jupyter-sandbox:help'
} as const;

/** Commands on a one-shot row of the panel (its context menu): not in the palette, they need a row. */
export const OneShotCommandIDs = {
  details: 'jupyter-sandbox:one-shot-details',
  copyId: 'jupyter-sandbox:one-shot-copy-id',
  kill: 'jupyter-sandbox:one-shot-kill'
} as const;

/** Copy a file from a sandbox into the workspace (copyfile.ts, a plugin of its own). */
export const CopyFileCommandID = 'jupyter-sandbox:copy-to-workspace';
