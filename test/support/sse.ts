/** A minimal Server-Sent Events reader over a fetch Response body, for tests. */
export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

export class SseReader {
  private buffer = "";
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  /** A read still in flight after a timeout: the next call awaits it, so the chunk it brings is never dropped. */
  private pendingRead: ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]> | undefined;
  readonly comments: string[] = [];
  /** As a browser's EventSource keeps it: the last `id:` seen, including id-only messages. */
  lastEventId: string | undefined;
  /** The first `id:` the stream sent. */
  firstEventId: string | undefined;

  constructor(response: Response) {
    if (!response.body) throw new Error("the response has no body");
    this.reader = response.body.getReader();
  }

  /** The next message, or undefined if none arrives within `timeout_ms` or the stream ends. */
  async next(timeout_ms: number): Promise<SseMessage | undefined> {
    const deadline = Date.now() + timeout_ms;
    for (;;) {
      const boundary = this.buffer.indexOf("\n\n");
      if (boundary >= 0) {
        const block = this.buffer.slice(0, boundary);
        this.buffer = this.buffer.slice(boundary + 2);
        const message: SseMessage = { data: "" };
        let isComment = true;
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) {
            this.comments.push(line.slice(1).trim());
            continue;
          }
          isComment = false;
          const [field, ...rest] = line.split(":");
          const value = rest.join(":").replace(/^ /, "");
          if (field === "id") message.id = value;
          else if (field === "event") message.event = value;
          else if (field === "data") message.data += value;
        }
        if (message.id !== undefined) {
          this.firstEventId ??= message.id;
          this.lastEventId = message.id;
        }
        // A message without data is not dispatched (per the SSE specification); an id-only one still moves the id.
        if (!isComment && message.data !== "") return message;
        continue;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return undefined;
      let timer: NodeJS.Timeout | undefined;
      this.pendingRead ??= this.reader.read();
      const chunk = await Promise.race([
        this.pendingRead,
        new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), remaining))),
      ]);
      clearTimeout(timer);
      if (chunk === "timeout") return undefined;
      this.pendingRead = undefined;
      if (chunk.done) return undefined;
      this.buffer += this.decoder.decode(chunk.value, { stream: true });
    }
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => {});
  }
}
