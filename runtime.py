"""A generator network run by an inference runtime instead of PyTorch: the demo's way on a CPU.

The network is exported once, in memory, to ONNX at its first batch (TorchScript-based exporter,
opset 17, the batch size free), from the batch's tensors, and run by one of two runtimes made
for inference (Conv and BatchNorm fused, their own convolution kernels), each session fed the
tensors it reads:
  openvino      the demo's default. On this project's 2-core CPU (Intel, AMX; measured on
                2026-12-06 with the machine slowed, docs/speed.md) it runs the layered generator's
                fusion U-Net in 2.8 ms on one thread where ONNX Runtime takes 7.4-7.8 and
                PyTorch 10.4: in bfloat16 for a network whose generator allows it
                (`LearnedGenerator.inference_precision`: the layered one, whose pictures stay within
                one grey level; tested), its transposed convolutions exported as sub-pixel ones
                (subpixel.py: 5.0 ms without), in float32 otherwise (6.1-6.9 ms, within 1e-5 of
                PyTorch) and on any CPU without bfloat16 arithmetic.
  onnxruntime   float32, within 2e-6 of PyTorch (the default until OpenVINO replaced it).
PyTorch stays the reference: `DanceDemo(runtime="torch")`, or DANCE_RUNTIME=torch, runs it (a
demo's runtime is DANCE_RUNTIME's where it is set, any of RUNTIMES: `chosen`); training and
evaluate.py always do. On a GPU, or where neither package is installed, PyTorch runs.
"""
import importlib.util
import io
import logging
import os
import warnings

import numpy as np
import torch

from subpixel import as_subpixel

log = logging.getLogger("dance")

OPSET = 17
RUNTIMES = ("torch", "onnxruntime", "openvino")
_NAMES = {"torch": "PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}   # for people
DEFAULT_RUNTIME = "openvino"
RUNTIME_VARIABLE = "DANCE_RUNTIME"   # the environment's word over the code's: torch, onnxruntime or openvino
PRECISIONS = ("f32", "bf16")      # bf16: bfloat16 products, float32 sums, where the CPU has the arithmetic
_NEEDS = {"onnxruntime": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino")}  # onnx: the exporter's
# The exporter's notes that its TorchScript path is deprecated: ours to know (we choose it), not
# the user's. Filters set once, by message, not warnings.catch_warnings around the export: that
# swaps the process's filters, and the demo exports on a thread of its own beside others.
EXPORTER_NOTES = (("You are using the legacy TorchScript", ""), ("The feature will be removed", r"torch\.onnx"))
for _note, _module in EXPORTER_NOTES:
    warnings.filterwarnings("ignore", message=_note, category=DeprecationWarning, module=_module)


def check_runtime(runtime):
    """`runtime`, or a ValueError (one line) when it names none of RUNTIMES."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    return runtime


def chosen(runtime):
    """The runtime a demo uses when `runtime` is asked for: DANCE_RUNTIME's where it is set (the
    environment's word over the code's, said in a log line). A ValueError (one line) when either
    names no runtime."""
    override = os.environ.get(RUNTIME_VARIABLE)
    if not override:
        return check_runtime(runtime)
    if override not in RUNTIMES:
        raise ValueError(f"{RUNTIME_VARIABLE}={override!r} names no runtime; choose one of {', '.join(RUNTIMES)}")
    if override != check_runtime(runtime):
        log.info("%s=%s: %s runs the network, not %s", RUNTIME_VARIABLE, override, _NAMES[override], _NAMES[runtime])
    return override


def available(runtime):
    """Whether `runtime` (and the exporter's onnx package) can be used here."""
    return all(importlib.util.find_spec(name) is not None for name in _NEEDS[runtime])


class _Positional(torch.nn.Module):
    """The network with its batch dict's tensors as positional inputs (what ONNX takes)."""

    def __init__(self, net, names):
        super().__init__()
        self.net, self.names = net, names

    def forward(self, *tensors):
        return self.net(dict(zip(self.names, tensors)))


def export_onnx(net, batch):
    """`net` (a module taking a batch dict) as an ONNX model (bytes) whose inputs are the batch's
    floating-point tensors, by name, sorted: (model, names)."""
    names = sorted(k for k, v in batch.items() if torch.is_tensor(v) and v.is_floating_point())
    buffer = io.BytesIO()
    # The exporter runs the module in eval mode, then puts back the mode of the module it was
    # given: the wrapper must be in eval mode too, or `net` is left training (its BatchNorm
    # then normalising each batch by itself).
    torch.onnx.export(_Positional(net, names).eval(), tuple(batch[k] for k in names), buffer, dynamo=False,
                      opset_version=OPSET, input_names=names, output_names=["image"],
                      dynamic_axes={**{k: {0: "batch"} for k in names}, "image": {0: "batch"}})
    return buffer.getvalue(), names


def cpu_has_bf16():
    """Whether OpenVINO finds bfloat16 arithmetic on this CPU (AVX512-BF16 or AMX)."""
    import openvino as ov
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class _OnnxRuntimeSession:
    """An ONNX model run by ONNX Runtime on `threads` threads (float32 only)."""

    precisions = ("f32",)

    def __init__(self, model, threads, precision):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # ONNX Runtime's threads spin for a while after each run by default, waiting for the next:
        # on two cores that spinning takes the CPU from detection (measured: 1.19x the demo's time).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3   # errors only: its notes on unused initialisers are not ours
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, feed):
        return self.session.run(None, feed)[0]


class _OpenVinoSession:
    """An ONNX model compiled by OpenVINO for the CPU, on `threads` threads, in `precision`."""

    precisions = PRECISIONS

    def __init__(self, model, threads, precision):
        import openvino as ov
        core = ov.Core()
        compiled = core.compile_model(core.read_model(model), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
            # Its thread left free to move: detection's threads share the same two cores.
            "ENABLE_CPU_PINNING": False})
        self.request = compiled.create_infer_request()
        self.inputs = [port.get_any_name() for port in compiled.inputs]

    def run(self, feed):
        # The feed's arrays are read in place (the caller's, float32 and contiguous); the output
        # comes back as a copy of the request's buffer, which the next run overwrites.
        return self.request.infer(feed, share_inputs=True)[0]


_SESSIONS = {"onnxruntime": _OnnxRuntimeSession, "openvino": _OpenVinoSession}
_PRECISION_NAMES = {"f32": "float32", "bf16": "bfloat16"}


class OnnxNet:
    """`net` (a module taking a batch dict, returning one tensor) run from its ONNX export by
    `runtime` ("openvino" or "onnxruntime"): `OnnxNet(net)(batch)` returns what `net(batch)`
    returns, as a torch tensor (CPU only), within the runtime's tolerance (module docstring).
    Exported at the first call, from that batch's tensors (their names sorted); `precision`
    "bf16" lets OpenVINO compute in bfloat16 where the CPU can (`self.precision`: what runs). One
    caller at a time: an OpenVINO request, unlike an ONNX Runtime session, must not run on two
    threads at once (each demo makes its own generator, so its own OnnxNet)."""

    def __init__(self, net, threads=None, runtime=DEFAULT_RUNTIME, precision="f32"):
        if runtime not in _SESSIONS:
            raise ValueError(f"unknown inference runtime {runtime!r}; choose one of {', '.join(_SESSIONS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self.net, self.threads = net.eval(), threads or torch.get_num_threads()
        # bfloat16 only where the runtime has it and the CPU has the arithmetic (AVX512-BF16 or AMX):
        # asked for elsewhere, OpenVINO would emulate it, slower than float32.
        if precision not in _SESSIONS[runtime].precisions or (precision == "bf16" and not cpu_has_bf16()):
            precision = "f32"
        self.runtime, self.precision = runtime, precision
        self.session = None
        log.info("%s runs the network (%s, %d thread%s)", _NAMES[runtime], _PRECISION_NAMES[precision], self.threads,
                 "" if self.threads == 1 else "s")

    def _export(self, batch):
        # In bfloat16, its transposed convolutions exported as sub-pixel convolutions: the same
        # function, which OpenVINO computes in bfloat16 (it keeps transposed ones in float32;
        # the layered U-Net: 5.0 -> 2.8 ms a frame, subpixel.py).
        net = as_subpixel(self.net) if self.precision == "bf16" else self.net
        model, _ = export_onnx(net, batch)
        self.session = _SESSIONS[self.runtime](model, self.threads, self.precision)
        self.reads = self.session.inputs

    def __call__(self, batch):
        if self.session is None:
            self._export(batch)
        feed = {k: np.ascontiguousarray(batch[k].numpy(), np.float32) for k in self.reads}
        return torch.from_numpy(self.session.run(feed))


def runtime_net(net, runtime, device, threads=None, precision="f32"):
    """What runs `net` at inference: the network itself, or an OnnxNet on `threads` threads (None:
    PyTorch's count) for "openvino" or "onnxruntime" on a CPU, in `precision` where the runtime
    allows it; the other of the two where the one asked for is not installed, else the network
    (with a note)."""
    if check_runtime(runtime) == "torch":
        return net
    if torch.device(device).type != "cpu":
        log.info("%s does not run on a GPU: PyTorch runs the network", _NAMES[runtime])
        return net
    for candidate in (runtime, *(r for r in _SESSIONS if r != runtime)):
        if available(candidate):
            if candidate != runtime:
                log.info("%s is not installed: %s runs the network", _NAMES[runtime], _NAMES[candidate])
            return OnnxNet(net, threads, candidate, precision)
    log.info("%s is not installed: PyTorch runs the network", _NAMES[runtime])
    return net
