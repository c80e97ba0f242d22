// The message queue between a panel and its webview; no `vscode` here, so it is unit-tested in plain Node.

/**
 * Messages sent before the webview says it is ready wait in a queue. With `replayOnReload`, the messages since
 * the last `reset()` are kept and sent again when the webview says it is ready a second time: VS Code reloads a
 * webview's page when its options change, and the new page starts empty.
 */
export class ReadyQueue<T> {
  private ready = false;
  private readonly queue: T[] = [];
  private readonly sent: T[] = [];

  constructor(
    private readonly deliver: (message: T) => void,
    private readonly options: { replayOnReload?: boolean } = {},
  ) {}

  markReady(): void {
    if (this.ready && this.options.replayOnReload) for (const message of this.sent) this.deliver(message);
    this.ready = true;
    for (const message of this.queue.splice(0)) this.send(message);
  }

  /** Forget what was sent: the next messages describe a new state from scratch. */
  reset(): void {
    this.sent.length = 0;
  }

  post(message: T): void {
    if (this.ready) this.send(message);
    else this.queue.push(message);
  }

  private send(message: T): void {
    if (this.options.replayOnReload) this.sent.push(message);
    this.deliver(message);
  }
}
