/**
 * A terminal in a sandbox: JupyterLab's own terminal widget (@jupyterlab/terminal, xterm.js,
 * its themes and settings) on a connection to the server's `sandbox/api/sandboxes/{id}/terminal`
 * websocket, which speaks the protocol of JupyterLab's terminals (terminado's JSON arrays).
 * The shell runs in the sandbox; closing the tab hangs it up.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection, Terminal as TerminalNS } from '@jupyterlab/services';
import { ITerminal, Terminal } from '@jupyterlab/terminal';
import { terminalIcon } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';

import type { ISandbox } from './wire';

/** JupyterLab's terminal settings, which a sandbox's terminal follows too. */
export const TERMINAL_SETTINGS = '@jupyterlab/terminal-extension:plugin';

/** The websocket URL of a sandbox's terminal (the token appended as jupyter_server's own websockets do). */
export function terminalUrl(settings: ServerConnection.ISettings, sandboxId: string): string {
  const path = URLExt.join(settings.wsUrl, 'sandbox/api/sandboxes', encodeURIComponent(sandboxId), 'terminal');
  return settings.appendToken && settings.token ? `${path}?token=${encodeURIComponent(settings.token)}` : path;
}

/** A terminal connection (what JupyterLab's Terminal widget talks to) to one sandbox's shell. */
export class SandboxTerminalConnection implements TerminalNS.ITerminalConnection {
  constructor(
    readonly sandbox: ISandbox,
    readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {
    this.name = sandbox.name;
    this.model = { name: sandbox.name };
    this.open();
  }

  readonly name: string;
  readonly model: TerminalNS.IModel;

  get messageReceived(): ISignal<this, TerminalNS.IMessage> {
    return this._messageReceived;
  }
  get connectionStatusChanged(): ISignal<this, TerminalNS.ConnectionStatus> {
    return this._statusChanged;
  }
  get disposed(): ISignal<this, void> {
    return this._disposed;
  }
  get connectionStatus(): TerminalNS.ConnectionStatus {
    return this._status;
  }
  get isDisposed(): boolean {
    return this._isDisposed;
  }

  send(message: TerminalNS.IMessage): void {
    if (this._ws?.readyState === WebSocket.OPEN) {
      this._ws.send(JSON.stringify([message.type, ...(message.content ?? [])]));
    }
  }

  /** A new shell: the old one ended with its websocket. */
  async reconnect(): Promise<void> {
    this.close();
    this.open();
  }

  async shutdown(): Promise<void> {
    this.dispose();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this.close();
    this._disposed.emit();
    Signal.clearData(this);
  }

  private open(): void {
    const ws = new this.serverSettings.WebSocket(terminalUrl(this.serverSettings, this.sandbox.id));
    this._ws = ws;
    this.setStatus('connecting');
    ws.onopen = () => this.setStatus('connected');
    ws.onmessage = (event: MessageEvent) => {
      const [type, ...content] = JSON.parse(String(event.data)) as [TerminalNS.MessageType, ...string[]];
      this._messageReceived.emit({ type, content });
    };
    ws.onclose = () => {
      if (this._ws === ws) {
        this.setStatus('disconnected');
      }
    };
  }

  private close(): void {
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.close();
    }
    this.setStatus('disconnected');
  }

  private setStatus(status: TerminalNS.ConnectionStatus): void {
    if (status !== this._status) {
      this._status = status;
      this._statusChanged.emit(status);
    }
  }

  private _ws: WebSocket | null = null;
  private _status: TerminalNS.ConnectionStatus = 'connecting';
  private _isDisposed = false;
  private _messageReceived = new Signal<this, TerminalNS.IMessage>(this);
  private _statusChanged = new Signal<this, TerminalNS.ConnectionStatus>(this);
  private _disposed = new Signal<this, void>(this);
}

/** A main-area tab with a shell in the sandbox, titled by the sandbox. */
export function sandboxTerminal(
  sandbox: ISandbox,
  label: string,
  options: Partial<ITerminal.IOptions> = {}
): MainAreaWidget<Terminal> {
  // closing the tab ends the shell: nothing else could reach it again
  const content = new Terminal(new SandboxTerminalConnection(sandbox), { ...options, shutdownOnClose: true });
  const widget = new MainAreaWidget({ content });
  widget.id = `jp-SandboxTerminal-${sandbox.id}-${Date.now()}`;
  widget.addClass('jp-SandboxTerminal');
  widget.title.icon = terminalIcon;
  widget.title.closable = true;
  // the widget retitles itself "Terminal <name>" on connecting; the tab says which sandbox
  const title = () => {
    if (content.title.label !== `Terminal: ${label}`) {
      content.title.label = `Terminal: ${label}`;
    }
  };
  title();
  content.title.changed.connect(title);
  widget.title.caption = `A shell in sandbox ${sandbox.name} (${sandbox.id})`;
  return widget;
}
