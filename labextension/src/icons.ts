import { LabIcon } from '@jupyterlab/ui-components';

/** A box, drawn with the theme's icon colour class so it follows light and dark themes. */
export const sandboxIcon = new LabIcon({
  name: 'jupyter-sandbox:sandbox',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M3 7l9-5 9 5v10l-9 5-9-5V7zm2 1.2v7.6l7 3.9 7-3.9V8.2l-7 3.9-7-3.9zm1.1-1.2L12 10.3 17.9 7 12 3.7 6.1 7z"/>' +
    '</svg>'
});

/** A key, for the API keys (JupyterLab has no key icon). */
export const keyIcon = new LabIcon({
  name: 'jupyter-sandbox:key',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" fill-rule="evenodd" d="M7 14a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm5.65-4A6 6 0 1 0 12.65 14H17v4h4v-4h2v-4H12.65z"/>' +
    '</svg>'
});
