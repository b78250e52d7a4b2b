"""Data parallelism under torchrun: this process's rank, the process group, the ranks'
agreement to stop at one step (Ctrl-C), and the networks wrapped for it (batch norm over
the global batch, DistributedDataParallel). A plain run is rank 0 of 1 and none of this
changes what it does."""
import contextlib
import logging
import os
import signal
import threading
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from nets import pick_device
from project import note_stop, stop_signals

BACKENDS = {"cuda": "nccl", "cpu": "gloo"}  # torch.distributed's backend for each kind of device

log = logging.getLogger("dance")


class Ranks(NamedTuple):
    """This process's place in a torchrun job; a plain run is rank 0 of 1."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def main(self):
        return self.rank == 0


def ranks():
    """The Ranks torchrun's environment gives this process (RANK, WORLD_SIZE, LOCAL_RANK, ...)."""
    env = os.environ
    return Ranks(*(int(env.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0),
                                                    ("LOCAL_WORLD_SIZE", 1))))


def start_ranks(device_name=None):
    """Under torchrun: join the process group (nccl on CUDA, gloo on the CPU) and return this
    rank's device, a GPU of its own; otherwise the device `pick_device` chooses."""
    where, device = ranks(), pick_device(device_name)
    if where.world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", where.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group(BACKENDS.get(device.type, "gloo"))
    return device


def distributed():
    """Whether this process is one rank of several (a torchrun job whose group it has joined)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def agree(flag, device):
    """True on every rank when `flag` is True on any: all ranks stop at the same step."""
    if not distributed():
        return flag
    votes = torch.tensor([float(flag)], device=device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes.item())


@contextlib.contextmanager
def main_rank_first():
    """Rank 0 runs the block first (building a cache, say), the other ranks after it, reading."""
    if distributed() and not ranks().main:
        dist.barrier()
    yield
    if distributed() and ranks().main:
        dist.barrier()


class AllReduceSum(torch.autograd.Function):
    """The sum of a tensor over all ranks, differentiable: the gradient of a sum that every
    rank used is the sum of every rank's gradient."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, every rank's
    frames together, on any device: PyTorch's SyncBatchNorm runs on GPUs only, and batch norm
    on each rank's share alone would make a 2 x B run a different model from a 1 x 2B one.
    The per-channel sums are all-reduced with autograd (AllReduceSum), so gradients flow across
    ranks as in SyncBatchNorm. Same parameters, buffers and state_dict keys as
    BatchNorm2d, so its weights load into a plain network."""

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        c = x.shape[1]
        count = x.new_full((1,), x.numel() / c)
        total = AllReduceSum.apply(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))
        mean, n = total[:c] / total[-1], total[-1]
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0.0)   # biased, as batch norm normalises
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean, momentum)
            self.running_var.lerp_(var * n / (n - 1).clamp_min(1.0), momentum)  # unbiased, as batch norm keeps
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale[None, :, None, None] + (self.bias - mean * scale)[None, :, None, None]


def global_batch_norm(net):
    """`net` with every BatchNorm2d turned into a GlobalBatchNorm2d, in place, keeping the same
    parameter and buffer tensors (an optimiser built on `net` goes on working)."""
    for name, child in net.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                       child.track_running_stats).to(child.weight.device)
            synced.weight, synced.bias = child.weight, child.bias
            synced.running_mean, synced.running_var = child.running_mean, child.running_var
            synced.num_batches_tracked = child.num_batches_tracked
            setattr(net, name, synced)
        else:
            global_batch_norm(child)
    return net


def distribute(net, device, sync_batch_norm=True):
    """`net` ready for data-parallel training under torchrun: its batch norm computed over the
    global batch (SyncBatchNorm on CUDA, GlobalBatchNorm2d elsewhere; sync_batch_norm=False
    keeps each rank's own), then DistributedDataParallel, which makes every rank start from rank
    0's weights and averages the gradients across ranks during backward. Buffers are not
    synchronised at each forward: synchronised statistics are the same on every rank already,
    and a forward on one rank alone (validation) must not wait for the others."""
    if sync_batch_norm:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net) if device.type == "cuda" else global_batch_norm(net)
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def unwrap(net):
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return net.module if isinstance(net, DistributedDataParallel) else net


class StopRequest:
    """Ctrl-C (or SIGTERM, SIGHUP: project.STOP_SIGNALS) during training asks the loop to
    stop after the current step, so that the state it saves is a whole number of steps and
    --resume continues exactly where it stopped (a second one stops at once, saving nothing
    more). Under torchrun the ranks run in sessions of their own: Ctrl-C reaches torchrun, which
    passes the signal on to each rank once and kills those still running 30 s later (another
    launcher may deliver it twice): there every signal is a request, and the ranks agree on the
    step to stop after (`agreed`)."""

    def __enter__(self):
        self.requested = False
        self.signals = stop_signals()
        self._previous = {s: signal.getsignal(s) for s in self.signals}
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                signal.signal(s, self._handle)
        return self

    def agreed(self, device):
        """True on every rank once any rank has heard a stop signal (`agree`). The vote only
        reads this rank's flag: the handler of a signal that arrives during the all-reduce
        runs when it returns, and a flag written back from the vote would lose that signal
        (torchrun passes on one Ctrl-C, then kills the ranks 30 s later). It returns the vote,
        not the flag, so that every rank returns the same; the late signal counts at the next."""
        stop = agree(self.requested, device)
        if stop:
            self.requested = True
        return stop

    def _handle(self, signum, frame):
        note_stop(signum)
        if self.requested and not distributed():
            raise KeyboardInterrupt
        if not self.requested:
            log.info("stopping after this step (Ctrl-C again to stop at once)")
        self.requested = True

    def __exit__(self, *exc):
        if threading.current_thread() is threading.main_thread():
            for s, handler in self._previous.items():
                signal.signal(s, handler)
