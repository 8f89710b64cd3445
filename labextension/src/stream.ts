/**
 * The user's own events: the server's `sandbox/api/events` websocket sends the events of this
 * user's sandboxes and the interrupts of the kernels they stopped, nobody else's
 * (jupyter_server's event bus reaches every user, and anyone may post to it). Reconnects with a backoff while the server is away, as JupyterLab's event
 * manager does; `onConnect` runs at each (re)connection, since events may have been missed.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';

import type { IKernelInterruptedEvent, ISandboxEvent } from './wire';

export class SandboxEventStream {
  constructor(
    private readonly onEvent: (event: ISandboxEvent | IKernelInterruptedEvent) => void,
    private readonly onConnect: () => void,
    private readonly settings = ServerConnection.makeSettings()
  ) {
    // the factory's promise settles only when the socket closes: the poll then backs off and reconnects
    this.poll = new Poll({ name: 'jupyter-sandbox:events', factory: () => this.subscribe(), standby: 'never' });
    void this.poll.start();
  }

  get isDisposed(): boolean {
    return this.poll.isDisposed;
  }

  dispose(): void {
    this.poll.dispose();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.close();
    }
  }

  private subscribe(): Promise<void> {
    return new Promise((_, reject) => {
      const { appendToken, token, WebSocket, wsUrl } = this.settings;
      let url = URLExt.join(wsUrl, 'sandbox/api/events');
      if (appendToken && token !== '') {
        url += `?token=${encodeURIComponent(token)}`;
      }
      const socket = (this.socket = new WebSocket(url));
      socket.onopen = () => this.onConnect();
      socket.onclose = () => reject(new Error('the sandbox event socket closed'));
      socket.onmessage = message => {
        if (typeof message.data === 'string' && message.data) {
          this.onEvent(JSON.parse(message.data) as ISandboxEvent | IKernelInterruptedEvent);
        }
      };
    });
  }

  private readonly poll: Poll;
  private socket: WebSocket | null = null;
}
