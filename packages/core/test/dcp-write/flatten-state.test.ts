import { describe, expect, it } from "vitest";
import { flattenStateDict } from "../../src/formats/dcp/flatten-state.js";
import { asTuple, HostTensor, InvalidArgumentError } from "../../src/index.js";

const t = HostTensor.fromValues("float32", [2], [1, 2]);

describe("flattenStateDict (torch's flatten_state_dict)", () => {
  it("walks dicts and lists that hold dicts or tensors; tuples, plain lists and values are leaves", () => {
    const flat = flattenStateDict({
      model: { "fc1.weight": t },
      optimizer: { state: { "fc1.weight": { step: t, exp_avg: t } }, param_groups: [{ lr: 0.1, betas: asTuple([0.9, 0.99]), params: ["fc1.weight"] }] },
      tensors: [t, 3],
      plain: [1, [2, 3]],
      empty: {},
      map: new Map<unknown, unknown>([[0, "zero"]]),
      step: 7,
    });
    expect(flat.map((e) => [e.key, e.path])).toEqual([
      ["model.fc1.weight", ["model", "fc1.weight"]],
      ["optimizer.state.fc1.weight.step", ["optimizer", "state", "fc1.weight", "step"]],
      ["optimizer.state.fc1.weight.exp_avg", ["optimizer", "state", "fc1.weight", "exp_avg"]],
      ["optimizer.param_groups.0.lr", ["optimizer", "param_groups", 0, "lr"]],
      ["optimizer.param_groups.0.betas", ["optimizer", "param_groups", 0, "betas"]],
      ["optimizer.param_groups.0.params", ["optimizer", "param_groups", 0, "params"]],
      ["tensors.0", ["tensors", 0]],
      ["tensors.1", ["tensors", 1]],
      ["plain", ["plain"]],
      ["map.0", ["map", "0"]],
      ["step", ["step"]],
    ]);
    expect(flat.find((e) => e.key === "plain")!.value).toEqual([1, [2, 3]]);
  });

  it("refuses two paths that flatten to the same key", () => {
    expect(() => flattenStateDict({ "a.b": 1, a: { b: 2 } })).toThrow(InvalidArgumentError);
  });
});
