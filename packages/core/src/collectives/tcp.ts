import { createServer, connect, type Server, type Socket } from "node:net";
import { hostname } from "node:os";
import { InvalidArgumentError } from "../errors.js";
import { HubCollective, type HubCollectiveOptions } from "./hub-collective.js";
import { encodeFrame, FrameDecoder, writeFrame, type Frame } from "./frames.js";
import { Hub, type FromHub, type ToHub } from "./hub.js";

/** Options of {@link TcpHubServer.start}. */
export interface TcpHubServerOptions {
  worldSize: number;
  /** @default "127.0.0.1" */
  host?: string;
  /** @default 0 (a free port) */
  port?: number;
  /** Ranks must present this id, so a stray process cannot join. */
  runId: string;
  /**
   * How long a closed connection waits for a better account of the rank's end (its exit code,
   * from the launcher) before the rank is reported as disconnected. @default 250
   */
  disconnectGraceMs?: number;
}

/**
 * The coordinator of `savepoint run`: a {@link Hub} behind a TCP server on loopback. Each rank
 * connects once (`TcpCollective`); a closed connection or an exited process marks the rank gone,
 * failing the others' operations at once.
 */
export class TcpHubServer {
  readonly hub: Hub;
  readonly #server: Server;
  readonly #sockets = new Map<number, Socket>();
  readonly #all = new Set<Socket>();
  readonly #options: TcpHubServerOptions;

  private constructor(server: Server, options: TcpHubServerOptions) {
    this.#server = server;
    this.#options = options;
    // The hub hands every rank the same result object: encode it once, not once per rank.
    let last: { message: FromHub; frame: Frame } | undefined;
    this.hub = new Hub(options.worldSize, (rank, message) => {
      const s = this.#sockets.get(rank);
      if (!s || s.destroyed) return;
      if (last?.message !== message) {
        last = { message, frame: encodeFrame(message) };
        // The hub sends to every rank synchronously: drop the frame after, not at the next message.
        queueMicrotask(() => (last = undefined));
      }
      writeFrame(s, last.frame);
    });
    server.on("connection", (socket) => this.#accept(socket));
  }

  static async start(options: TcpHubServerOptions): Promise<TcpHubServer> {
    const server = createServer();
    const hub = new TcpHubServer(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    return hub;
  }

  /** The port the server listens on. */
  get port(): number {
    const a = this.#server.address();
    return typeof a === "object" && a ? a.port : 0;
  }

  get host(): string {
    return this.#options.host ?? "127.0.0.1";
  }

  /** Marks `rank` as gone with a description of how it ended ("was killed by SIGKILL"). */
  rankGone(rank: number, why: string): void {
    this.hub.rankGone(rank, why);
  }

  async close(): Promise<void> {
    this.hub.close();
    for (const s of this.#all) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    this.#all.add(socket);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder();
    let rank = -1;
    let said = false;
    const reject = (message: string) => {
      writeFrame(socket, encodeFrame({ t: "reject", message } satisfies FromHub));
      socket.end();
    };
    socket.on("data", (chunk) => {
      let messages: unknown[];
      try {
        messages = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const m of messages as ToHub[]) {
        if (rank < 0) {
          if (m?.t !== "hello") return reject("the first message must be a hello");
          if (m.runId !== this.#options.runId) return reject(`this launcher runs job ${this.#options.runId}, not ${String(m.runId)}; the process was not started by this \`savepoint run\``);
          if (!Number.isInteger(m.rank) || m.rank < 0 || m.rank >= this.#options.worldSize) return reject(`rank ${m.rank} is outside the world of ${this.#options.worldSize} ranks`);
          if (this.#sockets.has(m.rank)) return reject(`rank ${m.rank} is already connected; create one collective per process (collectiveFromEnv() returns the same one every time)`);
          rank = m.rank;
          this.#sockets.set(rank, socket);
          if (m.where) this.hub.setWhere(rank, m.where);
          writeFrame(socket, encodeFrame({ t: "welcome" } satisfies FromHub));
        } else {
          if (m.t === "bye") said = true;
          this.hub.receive(rank, m);
        }
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.#all.delete(socket);
      if (rank < 0 || this.#sockets.get(rank) !== socket) return;
      if (said) return;
      const r = rank;
      setTimeout(() => this.hub.rankGone(r, "disconnected (its process exited or closed the connection)"), this.#options.disconnectGraceMs ?? 250).unref();
    });
  }
}

/** Options of {@link TcpCollective}. */
export interface TcpCollectiveOptions extends HubCollectiveOptions {
  rank: number;
  worldSize: number;
  host: string;
  port: number;
  runId: string;
}

/**
 * A rank of a job started by `savepoint run`: talks to the launcher's coordinator over TCP on
 * loopback. Usually created by `collectiveFromEnv()` from RANK, WORLD_SIZE and SAVEPOINT_HUB.
 * The connection does not keep the process alive between operations.
 */
export class TcpCollective extends HubCollective {
  readonly transport: string;
  readonly #socket: Socket;

  constructor(options: TcpCollectiveOptions) {
    super(options.rank, options.worldSize, options);
    if (!Number.isInteger(options.port) || options.port <= 0 || options.port > 65535) {
      throw new InvalidArgumentError(`the coordinator port must be an integer in [1, 65535], got ${options.port}.`);
    }
    this.transport = `savepoint run coordinator at ${options.host}:${options.port}`;
    const socket = connect({ host: options.host, port: options.port });
    this.#socket = socket;
    socket.setNoDelay(true);
    const decoder = new FrameDecoder();
    socket.on("data", (chunk) => {
      let messages: unknown[];
      try {
        messages = decoder.push(chunk);
      } catch (err) {
        socket.destroy();
        this.disconnected(`bad data from the coordinator (${(err as Error).message})`);
        return;
      }
      for (const m of messages) this.receive(m as FromHub);
    });
    socket.on("error", (err) => this.disconnected(`the connection to the coordinator failed (${(err as Error).message})`));
    socket.on("close", () => this.disconnected("the connection to the coordinator (the `savepoint run` launcher) closed"));
    writeFrame(socket, encodeFrame({ t: "hello", rank: this.rank, runId: options.runId, where: `pid ${process.pid} on ${hostname()}` } satisfies ToHub));
    socket.unref();
  }

  protected post(message: ToHub): void {
    const frame = encodeFrame(message); // throws DataCloneError before anything is sent
    writeFrame(this.#socket, frame);
  }

  protected override activeChanged(active: boolean): void {
    if (active) this.#socket.ref();
    else this.#socket.unref();
  }

  protected override async shutdown(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.#socket.destroyed) return resolve();
      this.#socket.end(() => resolve());
      setTimeout(resolve, 1000).unref();
    });
    this.#socket.destroy();
  }
}
