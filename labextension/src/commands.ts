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
  terminal: 'jupyter-sandbox:open-terminal',
  newKey: 'jupyter-sandbox:new-api-key',
  help: 'jupyter-sandbox:help'
} as const;
