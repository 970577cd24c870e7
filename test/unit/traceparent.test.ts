import { describe, expect, it } from "vitest";
import { traceId } from "../../src/http/request-log.js";

describe("traceId (W3C traceparent)", () => {
  it("takes the trace id of a valid header", () => {
    expect(traceId("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    // A future version may append fields; its trace id still counts.
    expect(traceId("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });

  it("ignores what the spec says to treat as absent", () => {
    for (const header of [
      undefined,
      "",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      `00-${"a".repeat(600)}`,
    ]) {
      expect(traceId(header), String(header)).toBeUndefined();
    }
  });
});
