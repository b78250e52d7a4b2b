"""A generator network run by ONNX Runtime instead of PyTorch: the demo's default on a CPU.

ONNX Runtime is made for inference (Conv and BatchNorm fused, its own convolution kernels): on
this project's 2-core CPU it runs the layered generator's fusion U-Net in 15.6 ms on one thread
where PyTorch takes 32 ms, outputs within 2e-6 of PyTorch's (measured: runs/ in docs/speed.md;
pictures within one grey level on under 1e-4 of values: tests/test_pipeline.py). PyTorch stays
the reference: `DanceDemo(runtime="torch")`, or DANCE_RUNTIME=torch, runs it; training and
evaluate.py always do. The network is exported once, in memory, at its first batch
(TorchScript-based exporter, opset 17, the batch size free), from the batch's tensors; the
session is fed the ones it reads. Without the onnxruntime package, or on a GPU, PyTorch runs.
"""
import importlib.util
import io
import logging
import os
import warnings

import numpy as np
import torch

log = logging.getLogger("dance")

OPSET = 17
RUNTIMES = ("torch", "onnxruntime")


def available():
    """Whether ONNX Runtime (and the exporter's onnx package) can be used here."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


class _Positional(torch.nn.Module):
    """The network with its batch dict's tensors as positional inputs (what ONNX takes)."""

    def __init__(self, net, names):
        super().__init__()
        self.net, self.names = net, names

    def forward(self, *tensors):
        return self.net(dict(zip(self.names, tensors)))


class OnnxNet:
    """`net` (a module taking a batch dict, returning one tensor) run by ONNX Runtime:
    `OnnxNet(net)(batch)` returns what `net(batch)` returns, as a torch tensor (CPU only).
    Exported at the first call, from that batch's tensors (their names sorted)."""

    def __init__(self, net, threads=None):
        self.net, self.threads = net.eval(), threads or torch.get_num_threads()
        self.session = self.names = None

    def _export(self, batch):
        import onnxruntime as ort
        self.names = sorted(k for k, v in batch.items() if torch.is_tensor(v) and v.is_floating_point())
        tensors = tuple(batch[k] for k in self.names)
        buffer = io.BytesIO()
        # The exporter runs the module in eval mode, then puts back the mode of the module it was
        # given: the wrapper must be in eval mode too, or `net` is left training (its BatchNorm
        # then normalising each batch by itself).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on the legacy path and on constants
            torch.onnx.export(_Positional(self.net, self.names).eval(), tensors, buffer, dynamo=False,
                              opset_version=OPSET, input_names=self.names, output_names=["image"],
                              dynamic_axes={**{k: {0: "batch"} for k in self.names}, "image": {0: "batch"}})
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # ONNX Runtime's threads spin for a while after each run by default, waiting for the next:
        # on two cores that spinning takes the CPU from detection (measured: 1.19x the demo's time).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3   # errors only: its notes on unused initialisers are not ours
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        self.reads = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch):
        if self.session is None:
            self._export(batch)
        feed = {k: np.ascontiguousarray(batch[k].numpy(), np.float32) for k in self.reads}
        return torch.from_numpy(self.session.run(None, feed)[0])


def runtime_net(net, runtime, device, threads=None):
    """What runs `net` at inference: the network itself, or an OnnxNet on `threads` threads (None:
    PyTorch's count) for "onnxruntime" on a CPU where ONNX Runtime is installed (else the network,
    with a note)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch" or os.environ.get("DANCE_RUNTIME") == "torch":
        return net
    if torch.device(device).type != "cpu" or not available():
        log.info("runtime onnxruntime: %s; PyTorch runs the network",
                 "not on a GPU" if torch.device(device).type != "cpu" else "onnxruntime is not installed")
        return net
    return OnnxNet(net, threads)
