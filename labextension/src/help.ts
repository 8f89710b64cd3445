/**
 * The documentation, opened from the Help menu, the palette and the panel's toolbar: the
 * project's README, bundled into the extension and rendered by JupyterLab's own markdown
 * renderer in a main-area tab (works offline, matches the installed version). A
 * deployment that hosts its own docs sets the `docsUrl` setting instead.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import readme from '../../README.md';
import { sandboxIcon } from './icons';

export async function docsWidget(rendermime: IRenderMimeRegistry): Promise<MainAreaWidget> {
  const renderer = rendermime.createRenderer('text/markdown');
  await renderer.renderModel(rendermime.createModel({ data: { 'text/markdown': readme }, trusted: false }));
  renderer.addClass('jp-SandboxDocs');
  const widget = new MainAreaWidget({ content: renderer });
  widget.id = 'jupyter-sandbox-docs';
  widget.title.label = 'Sandboxes documentation';
  widget.title.icon = sandboxIcon;
  widget.title.closable = true;
  return widget;
}
