import { describe, expect, it } from "vitest";
import { PoolGate, SLOW_CONNECTS_FOR_OUTAGE, runCancellable } from "../../src/db/pool-gate.js";
import { TallyError } from "../../src/errors.js";

const never = () => new Promise<never>(() => {});
const codeOf = (error: unknown) => (error instanceof TallyError ? error.code : String(error));

describe("the pool gate", () => {
  it("refuses at once with 503 when the wait queue is full", async () => {
    const gate = new PoolGate({ slots: 1, queue_max: 2, acquire_timeout_ms: 60_000, probe_interval_ms: 250 });
    void gate.run(never);
    const queued = [gate.run(async () => 1), gate.run(async () => 2)];
    for (const waiting of queued) waiting.catch(() => {});
    expect(gate.queued).toBe(2);
    await expect(gate.run(async () => 3)).rejects.toSatisfy((error) => codeOf(error) === "service_unavailable");
  });

  it("cancels a queued wait when the request's deadline fires (a 504 takes no connection afterwards)", async () => {
    const gate = new PoolGate({ slots: 1, queue_max: 10, acquire_timeout_ms: 60_000, probe_interval_ms: 250 });
    void gate.run(never);
    const controller = new AbortController();
    let started = false;
    const waiting = runCancellable(controller.signal, () =>
      gate.run(async () => {
        started = true;
      }),
    );
    expect(gate.queued).toBe(1);
    controller.abort();
    await expect(waiting).rejects.toSatisfy((error) => codeOf(error) === "request_timeout");
    expect(gate.queued).toBe(0);
    expect(started).toBe(false);
  });

  it("after an unreachable database, refuses at once except one probe per interval, and reopens on its success", async () => {
    let now = 0;
    const gate = new PoolGate({ slots: 4, queue_max: 10, acquire_timeout_ms: 60_000, probe_interval_ms: 250, now_ms: () => now });
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    await expect(gate.run(async () => Promise.reject(refused))).rejects.toBe(refused);
    expect(gate.unreachable).toBe(true);
    let ran = 0;
    await expect(gate.run(async () => ran++)).rejects.toSatisfy((error) => codeOf(error) === "service_unavailable");
    expect(ran).toBe(0);
    now += 250;
    // The probe goes through; while it runs, others are still refused.
    let finishProbe!: () => void;
    const probe = gate.run(() => new Promise<void>((resolve) => (finishProbe = resolve)));
    await expect(gate.run(async () => ran++)).rejects.toSatisfy((error) => codeOf(error) === "service_unavailable");
    finishProbe();
    await probe;
    expect(gate.unreachable).toBe(false);
    expect(await gate.run(async () => "served")).toBe("served");
  });

  it("bounds the total wait of one request, not each of its queries", async () => {
    let now = 0;
    const gate = new PoolGate({ slots: 1, queue_max: 10, acquire_timeout_ms: 500, probe_interval_ms: 250, now_ms: () => now });
    let release!: () => void;
    void gate.run(() => new Promise<void>((resolve) => (release = resolve)));
    const outcome = runCancellable(new AbortController().signal, async () => {
      const first = gate.run(async () => "first");
      await new Promise((resolve) => setImmediate(resolve));
      now += 500; // the clock says this wait used the whole budget
      release();
      await first;
      void gate.run(never);
      return gate.run(async () => "second");
    });
    await expect(outcome).rejects.toSatisfy((error) => codeOf(error) === "service_unavailable");
  });

  it.each(["CONNECT_TIMEOUT", "53300"])("takes %s for an outage only when they come in a row: a busy or full server still serves", async (code) => {
    const gate = new PoolGate({ slots: 4, queue_max: 10, acquire_timeout_ms: 60_000, probe_interval_ms: 250 });
    const slow = () => Object.assign(new Error(`connect failed: ${code}`), { code });
    const failSlowly = async (times: number) => {
      for (let attempt = 0; attempt < times; attempt++) await expect(gate.run(async () => Promise.reject(slow()))).rejects.toThrow();
    };
    await failSlowly(SLOW_CONNECTS_FOR_OUTAGE - 1);
    expect(gate.unreachable).toBe(false);
    // Work served between them means the database answers: the count starts again.
    expect(await gate.run(async () => "served")).toBe("served");
    await failSlowly(SLOW_CONNECTS_FOR_OUTAGE - 1);
    expect(gate.unreachable).toBe(false);
    await failSlowly(1);
    expect(gate.unreachable).toBe(true);
  });
});
