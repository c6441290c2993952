import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { TcpCollective, TcpHubServer } from "../../src/collectives/tcp.js";
import { CollectiveTimeoutError } from "../../src/errors.js";
import { REPO } from "../helpers/fixtures.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function start(worldSize: number, timeoutMs = 2000) {
  const server = await TcpHubServer.start({ worldSize, runId: "job1", disconnectGraceMs: 50 });
  const ranks = Array.from({ length: worldSize }, (_, rank) => new TcpCollective({ rank, worldSize, host: "127.0.0.1", port: server.port, runId: "job1", timeoutMs }));
  cleanup.push(() => server.close(), () => Promise.all(ranks.map((r) => r.close())).then(() => undefined));
  return { server, ranks };
}

describe("TCP collective (the savepoint run coordinator)", () => {
  it("carries barrier, broadcast and allGather (typed arrays included) over loopback sockets", async () => {
    const { ranks } = await start(3);
    await Promise.all(ranks.map((c) => c.barrier("start")));
    expect(await Promise.all(ranks.map((c) => c.broadcast("path", `ck/${c.rank}.ckpt`)))).toEqual(["ck/0.ckpt", "ck/0.ckpt", "ck/0.ckpt"]);
    const g = await Promise.all(ranks.map((c) => c.allGather("g", new Float32Array([c.rank + 0.5]))));
    expect(g[2]).toEqual([new Float32Array([0.5]), new Float32Array([1.5]), new Float32Array([2.5])]);
  });

  it("times out naming the rank that did not arrive, and where it runs", async () => {
    const { ranks } = await start(2, 200);
    await ranks[1]!.barrier("warm").catch(() => {}); // rank 1 said hello and is known; rank 0 never joins
    const err = (await ranks[1]!.barrier("save a.ckpt").catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(CollectiveTimeoutError);
    expect(err.message).toMatch(/rank 0 \(pid \d+ on .+\) did not join/);
  });

  it("a rank the launcher reports as exited fails the waiting ones at once", async () => {
    const { server, ranks } = await start(3, 60_000);
    const t = Date.now();
    const waiting = Promise.allSettled([ranks[0]!.barrier("save b.ckpt"), ranks[1]!.barrier("save b.ckpt")]);
    setTimeout(() => server.rankGone(2, "was killed by SIGKILL"), 50);
    for (const r of await waiting) expect(String((r as PromiseRejectedResult).reason)).toMatch(/rank 2 .*was killed by SIGKILL while ranks 0, 1 waited in `save b\.ckpt`/);
    expect(Date.now() - t).toBeLessThan(10_000);
  });

  it("a rank whose process dies is noticed from its closed connection", async () => {
    const hub = await TcpHubServer.start({ worldSize: 2, runId: "job2", disconnectGraceMs: 50 });
    cleanup.push(() => hub.close());
    const rank0 = new TcpCollective({ rank: 0, worldSize: 2, host: "127.0.0.1", port: hub.port, runId: "job2", timeoutMs: 60_000 });
    cleanup.push(() => rank0.close());
    const child = spawn(process.execPath, ["--input-type=module", "-e", `import { collectiveFromEnv } from "@savepoint/core"; const c = collectiveFromEnv(); await c.barrier("hello"); console.log("joined"); setInterval(() => {}, 1000);`], {
      cwd: REPO,
      env: { ...process.env, SAVEPOINT_HUB: `127.0.0.1:${hub.port}`, SAVEPOINT_RUN_ID: "job2", RANK: "1", WORLD_SIZE: "2" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    cleanup.push(() => void child.kill("SIGKILL"));
    await rank0.barrier("hello");
    const t = Date.now();
    const waiting = rank0.barrier("save c.ckpt").catch((e: Error) => e);
    child.kill("SIGKILL");
    const err = (await waiting) as Error;
    expect(err).toBeInstanceOf(CollectiveTimeoutError);
    expect(err.message).toMatch(/rank 1 \(pid \d+ on .+\) disconnected .* while rank 0 waited in `save c\.ckpt`/);
    expect(Date.now() - t).toBeLessThan(10_000);
  });

  it("refuses a process of another job and a second connection for one rank", async () => {
    const { server, ranks } = await start(2);
    await Promise.all(ranks.map((c) => c.barrier("up")));
    const stranger = new TcpCollective({ rank: 1, worldSize: 2, host: "127.0.0.1", port: server.port, runId: "other", timeoutMs: 1000 });
    await expect(stranger.barrier("x")).rejects.toThrow(/this launcher runs job job1, not other/);
    const twin = new TcpCollective({ rank: 1, worldSize: 2, host: "127.0.0.1", port: server.port, runId: "job1", timeoutMs: 1000 });
    await expect(twin.barrier("x")).rejects.toThrow(/rank 1 is already connected/);
    await Promise.all([stranger.close(), twin.close()]);
  });

  it("a closed coordinator fails pending operations instead of hanging", async () => {
    const { server, ranks } = await start(2, 60_000);
    await Promise.all(ranks.map((c) => c.barrier("up")));
    const pending = ranks[0]!.barrier("save d.ckpt").catch((e: Error) => e);
    await server.close();
    expect(String(await pending)).toMatch(/lost the coordinator of the group during `save d\.ckpt`/);
  });
});
