/**
 * Copy a file from a sandbox into the workspace (issue 26; `%sandbox pull FILE` in a notebook): a
 * right-click on a file of the panel's file tree, or "Copy a File from This Sandbox into the
 * Workspace…" on a sandbox row and in the palette, which asks for the path and offers the sandbox's
 * files. The bytes come through the files route, within the server's request limit, and JupyterLab's
 * contents API saves them beside the sandbox's notebook, else in the file browser's folder. An
 * existing file is replaced only when the user says so.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, InputDialog, Notification, showDialog } from '@jupyterlab/apputils';
import type { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { Contents } from '@jupyterlab/services';

import { api, APIError } from './api';
import { CopyFileCommandID } from './commands';
import { formatBytes } from './format';
import { kernelSessionPath } from './kinds';
import { SANDBOX_ROW } from './menus';
import { isDirectory, relativePath, WORKDIR, workspaceTarget } from './paths';
import { report } from './panel/panel';
import { SandboxStore } from './store';
import type { ISandbox } from './wire';

/** A file (not a folder) of the panel's file tree; its sandbox row holds it. */
export const FILE_ENTRY = '.jp-SandboxFiles-entry.jp-mod-file';
const MAX_OFFERED = 200; // files the path dialog lists (any other path can be typed)
const MAX_FOLDERS = 50; // folders listed to find them (one request each)

/** The sandbox's files, breadth first from its working directory, relative to it (at most `limit`). */
async function sandboxFiles(id: string, limit = MAX_OFFERED): Promise<string[]> {
  const found: string[] = [];
  const folders = [WORKDIR];
  let listed = 0;
  while (folders.length && found.length < limit && listed++ < MAX_FOLDERS) {
    const folder = folders.shift()!;
    try {
      for (const entry of await api.files(id, folder)) {
        if (isDirectory(entry)) {
          folders.push(entry.path);
        } else if (found.length < limit) {
          found.push(relativePath(entry.path));
        }
      }
    } catch {
      // a folder gone or unreadable since its parent was listed: the others still count
    }
  }
  return found;
}

async function exists(contents: Contents.IManager, path: string): Promise<boolean> {
  try {
    await contents.get(path, { content: false });
    return true;
  } catch (error) {
    const status = (error as { response?: Response }).response?.status;
    if (status === 404) {
      return false;
    }
    throw error;
  }
}

/** A blob's bytes as base64 (what the contents API takes for any file, text or not). */
function base64(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

export interface ICopyOptions {
  app: JupyterFrontEnd;
  store: SandboxStore;
  browser: IDefaultFileBrowser | null;
  /** The sandbox a command without a row acts on (the current notebook's), by id or name. */
  current: () => string | null;
}

/** Copy `path` (relative to the sandbox's working directory) into the workspace; the saved path, or null. */
export async function copyIntoWorkspace(
  options: ICopyOptions,
  sandbox: ISandbox,
  path: string
): Promise<string | null> {
  const { app, store, browser } = options;
  const contents = app.serviceManager.contents;
  const notebook = kernelSessionPath(sandbox, app.serviceManager.sessions.running());
  const target = workspaceTarget(path, notebook, browser?.model.path ?? null);
  const limit = store.config?.max_upload_size ?? Infinity;
  if (await exists(contents, target)) {
    const answer = await showDialog({
      title: 'Replace File?',
      body: `${target} is already in the workspace. Replace it with ${path} from ${sandbox.name}?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Replace' })],
      defaultButton: 0 // Enter keeps the workspace's file
    });
    if (!answer.button.accept) {
      return null;
    }
  }
  const blob = await api.fileBlob(sandbox.id, path);
  if (blob.size > limit) {
    throw new APIError(
      413,
      `${path} is ${formatBytes(blob.size)}, over the ${formatBytes(limit)} the server takes in one request`
    );
  }
  await contents.save(target, { type: 'file', format: 'base64', content: await base64(blob) });
  await browser?.model.refresh();
  Notification.success(`Copied ${path} from ${sandbox.name} to ${target || '/'}`, { autoClose: 4000 });
  return target;
}

/** The command and its menu entries: on the panel's files, its sandbox rows, and the palette. */
export function addCopyFileCommand(options: ICopyOptions): void {
  const { app, store } = options;
  const { commands, contextMenu } = app;

  /** The file entry a context menu was opened on: its sandbox's id and its path. */
  const fileHit = (): { id: string; path: string } | null => {
    const node = app.contextMenuHitTest(n => n.matches(FILE_ENTRY));
    const id = node?.closest<HTMLElement>(SANDBOX_ROW)?.dataset.id;
    const path = node?.dataset.path;
    return id && path ? { id, path } : null;
  };
  const sandboxOf = async (key: string): Promise<ISandbox> => store.find(key) ?? api.get(key);

  commands.addCommand(CopyFileCommandID, {
    label: args =>
      args.file
        ? 'Copy into the Workspace'
        : args.row
          ? 'Copy a File from This Sandbox into the Workspace…'
          : "Copy a File from This Notebook's Sandbox into the Workspace…",
    caption: 'Save a copy of a file of the sandbox beside its notebook, or in the file browser’s folder',
    execute: async args => {
      const hit = args.file ? fileHit() : null;
      const rowNode = args.row ? app.contextMenuHitTest(n => n.matches(SANDBOX_ROW)) : null;
      const key = hit?.id ?? (args.id ? String(args.id) : null) ?? rowNode?.dataset.id ?? options.current();
      if (!key) {
        Notification.warning('Open a notebook with a kernel, or pick a sandbox in the Sandboxes panel.', {
          autoClose: 6000
        });
        return;
      }
      await report('Copy into the workspace from', async () => {
        const sandbox = await sandboxOf(key);
        let path = hit?.path ?? (args.path ? String(args.path) : null);
        if (!path) {
          const files = await sandboxFiles(sandbox.id);
          const answer = await InputDialog.getItem({
            title: `Copy a File from ${sandbox.name} into the Workspace`,
            label: `Path in the sandbox (relative to ${WORKDIR})`,
            items: files,
            editable: true,
            placeholder: files.length ? files[0] : 'out/result.csv',
            okLabel: 'Copy'
          });
          path = answer.button.accept ? (answer.value ?? '').trim() : '';
          if (!path) {
            return;
          }
        }
        await copyIntoWorkspace(options, sandbox, relativePath(path));
      });
    }
  });
  contextMenu.addItem({ command: CopyFileCommandID, args: { file: true }, selector: FILE_ENTRY, rank: -1 });
  contextMenu.addItem({ command: CopyFileCommandID, args: { row: true }, selector: SANDBOX_ROW, rank: 4.5 });
}
