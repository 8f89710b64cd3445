import { LabIcon } from '@jupyterlab/ui-components';

/** A box, drawn with the theme's icon colour class so it follows light and dark themes. */
export const sandboxIcon = new LabIcon({
  name: 'jupyter-sandbox:sandbox',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M3 7l9-5 9 5v10l-9 5-9-5V7zm2 1.2v7.6l7 3.9 7-3.9V8.2l-7 3.9-7-3.9zm1.1-1.2L12 10.3 17.9 7 12 3.7 6.1 7z"/>' +
    '</svg>'
});
