"""The exported policy as an ONNX graph (``policy.onnx``), for runtimes without torch.

The graph is built node by node with ``onnx.helper`` from the same record ``policy.pt`` holds, the
same operations in the same order as ``policy_loader.Policy`` (and rewardgen's evaluator): subtract
the observation mean, divide by the standard deviation, clip, then per layer a MatMul and an Add with
the activation between layers, a clip to [-1, 1] and the rescaling to the env's action range. Input
``obs`` (batch, obs_dim) float32; outputs ``action`` (the env's range) and ``normalized_action`` ([-1, 1]).

Building it by hand keeps it small and exact (no tracing, no deprecated exporter) and needs one
package, ``onnx`` (``pip install 'rewardgen[onnx]'``: an 8.9 MB wheel plus ml_dtypes, 0.5 MB);
``onnx.reference.ReferenceEvaluator`` runs it for the tests, so no runtime is needed either.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: ONNX opset and IR version of the graph: old enough for every current runtime (onnxruntime >= 1.14)
OPSET = 17
IR_VERSION = 8


class OnnxUnavailable(RuntimeError):
    """The ``onnx`` package is not installed; the message says how to get it."""


def onnx_model_bytes(record: dict[str, Any]) -> bytes:
    """The serialized ONNX model of a ``policy_export.torch_module_record`` record."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise OnnxUnavailable("no policy.onnx: the onnx package is not installed (pip install 'rewardgen[onnx]')") \
            from None
    meta, state = record["meta"], record["state_dict"]
    arch = meta["architecture"]

    def const(name: str, value) -> Any:
        return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)

    mean = state["obs_mean"].numpy()
    std = np.sqrt(state["obs_var"].numpy() + np.float32(arch["epsilon"]))
    inits = [const("obs_mean", mean), const("obs_std", std), const("clip_lo", -arch["clip_obs"]),
             const("clip_hi", arch["clip_obs"]), const("minus_one", -1.0), const("one", 1.0), const("half", 0.5)]
    nodes = [helper.make_node("Sub", ["obs", "obs_mean"], ["centred"]),
             helper.make_node("Div", ["centred", "obs_std"], ["scaled"]),
             helper.make_node("Clip", ["scaled", "clip_lo", "clip_hi"], ["x0"])]
    activation = {"tanh": "Tanh", "relu": "Relu", "elu": "Elu"}[arch["activation"]]
    n = len(arch["hidden"]) + 1
    x = "x0"
    for i in range(n):
        inits += [const(f"w{i}_t", state[f"layers.{i}.weight"].numpy().T),
                  const(f"b{i}", state[f"layers.{i}.bias"].numpy())]
        nodes += [helper.make_node("MatMul", [x, f"w{i}_t"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"])]
        x = f"z{i}"
        if i < n - 1:
            nodes.append(helper.make_node(activation, [x], [f"h{i}"]))
            x = f"h{i}"
    nodes.append(helper.make_node("Clip", [x, "minus_one", "one"], ["normalized_action"]))
    if arch["rescale"]:
        low, high = state["action_low"].numpy(), state["action_high"].numpy()
        inits += [const("action_low", low), const("action_span", high - low)]
        nodes += [helper.make_node("Add", ["normalized_action", "one"], ["shifted"]),
                  helper.make_node("Mul", ["shifted", "half"], ["unit"]),
                  helper.make_node("Mul", ["unit", "action_span"], ["spread"]),
                  helper.make_node("Add", ["spread", "action_low"], ["action"])]
    else:
        nodes.append(helper.make_node("Identity", ["normalized_action"], ["action"]))
    graph = helper.make_graph(
        nodes, "rewardgen_policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", arch["obs_dim"]])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", arch["act_dim"]]),
         helper.make_tensor_value_info("normalized_action", TensorProto.FLOAT, ["batch", arch["act_dim"]])],
        inits)
    model = helper.make_model(graph, producer_name="rewardgen", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    for key in ("env_id", "task", "candidate", "run", "episode_length", "trusted_fitness"):
        if meta.get(key) is not None:
            model.metadata_props.add(key=key, value=str(meta[key]))
    onnx.checker.check_model(model)
    return model.SerializeToString()


__all__ = ["IR_VERSION", "OPSET", "OnnxUnavailable", "onnx_model_bytes"]
