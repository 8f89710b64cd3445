/**
 * A sandbox's files as a tree under its working directory: folders open in place, a file
 * downloads on click, files dropped on a folder (or the root) upload into it.
 */
import { caretDownIcon, caretRightIcon, downloadIcon, fileIcon, folderIcon } from '@jupyterlab/ui-components';
import React, { useCallback, useEffect, useState } from 'react';

import { api } from '../api';
import { formatBytes } from '../format';
import { isDirectory, relativePath, WORKDIR } from '../paths';
import type { IFileEntry, ISandbox } from '../wire';

export interface IFileTreeProps {
  sandbox: ISandbox;
  /** Bumped after an upload: open folders are listed again. */
  version: number;
  onDownload: (entry: IFileEntry) => void;
  onUpload: (dir: string, files: File[]) => void;
}

type Listing = IFileEntry[] | { error: string };

/** Dropped files, if the drag carries any (not text or a JupyterLab item). */
export function droppedFiles(event: React.DragEvent): File[] {
  return Array.from(event.dataTransfer?.files ?? []);
}

/** Lets a drop of files land on `node` (browsers refuse drops unless dragover is cancelled). */
export function dropTarget(onFiles: (files: File[]) => void) {
  return {
    onDragOver: (event: React.DragEvent) => {
      if (Array.from(event.dataTransfer?.types ?? []).includes('Files')) {
        event.preventDefault();
        event.stopPropagation();
        event.dataTransfer.dropEffect = 'copy';
      }
    },
    onDrop: (event: React.DragEvent) => {
      const files = droppedFiles(event);
      if (files.length) {
        event.preventDefault();
        event.stopPropagation();
        onFiles(files);
      }
    }
  };
}

export function FileTree(props: IFileTreeProps): JSX.Element {
  const { sandbox, version } = props;
  const [open, setOpen] = useState<Set<string>>(() => new Set([WORKDIR]));
  const [listings, setListings] = useState<Map<string, Listing>>(() => new Map());

  const load = useCallback(
    async (dir: string) => {
      let listing: Listing;
      try {
        listing = await api.files(sandbox.id, dir);
      } catch (error) {
        listing = { error: (error as Error).message };
      }
      setListings(previous => new Map(previous).set(dir, listing));
    },
    [sandbox.id]
  );

  // first shown, and after each upload: list every open folder again
  useEffect(() => {
    open.forEach(dir => void load(dir));
  }, [version, load]);

  const toggle = (dir: string) => {
    const next = new Set(open);
    if (next.has(dir)) {
      next.delete(dir);
    } else {
      next.add(dir);
      void load(dir);
    }
    setOpen(next);
  };

  const renderDir = (dir: string, depth: number): JSX.Element[] => {
    const listing = listings.get(dir);
    const indent = { paddingLeft: `calc(${depth} * var(--jp-sandbox-indent))` };
    if (listing === undefined) {
      return [
        <li key={`${dir}/…`} className="jp-SandboxFiles-note" style={indent}>
          Loading…
        </li>
      ];
    }
    if (!Array.isArray(listing)) {
      return [
        <li key={`${dir}/!`} className="jp-SandboxFiles-note" style={indent}>
          {listing.error}
        </li>
      ];
    }
    if (listing.length === 0) {
      return [
        <li key={`${dir}/∅`} className="jp-SandboxFiles-note" style={indent}>
          Empty folder
        </li>
      ];
    }
    return listing.flatMap(entry => {
      if (isDirectory(entry)) {
        const expanded = open.has(entry.path);
        const Caret = expanded ? caretDownIcon.react : caretRightIcon.react;
        const row = (
          <li
            key={entry.path}
            className="jp-SandboxFiles-entry jp-mod-dir"
            data-path={relativePath(entry.path)}
            style={indent}
            title={`${relativePath(entry.path)} — drop files here to upload into it`}
            onClick={() => toggle(entry.path)}
            {...dropTarget(files => props.onUpload(entry.path, files))}
          >
            <span className="jp-SandboxFiles-caret">
              <Caret tag="span" />
            </span>
            <folderIcon.react tag="span" className="jp-SandboxFiles-icon" />
            <span className="jp-SandboxFiles-name">{entry.name}</span>
          </li>
        );
        return expanded ? [row, ...renderDir(entry.path, depth + 1)] : [row];
      }
      return [
        <li
          key={entry.path}
          className="jp-SandboxFiles-entry jp-mod-file"
          data-path={relativePath(entry.path)}
          style={indent}
          title={`Download ${relativePath(entry.path)}`}
          onClick={() => props.onDownload(entry)}
        >
          <span className="jp-SandboxFiles-caret" />
          <fileIcon.react tag="span" className="jp-SandboxFiles-icon" />
          <span className="jp-SandboxFiles-name">{entry.name}</span>
          <span className="jp-SandboxFiles-size">{formatBytes(entry.size)}</span>
          <downloadIcon.react tag="span" className="jp-SandboxFiles-download" />
        </li>
      ];
    });
  };

  return (
    <ul className="jp-SandboxFiles" aria-label={`Files in ${sandbox.name}`}>
      {renderDir(WORKDIR, 0)}
    </ul>
  );
}
