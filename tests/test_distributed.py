"""Training beyond one process: torchrun data parallelism on the CPU (gloo), checked against
one process doing the same work; and --size 256 end to end."""
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from conftest import ROOT, as_in_a_terminal, assert_one_line_error, read_until, run
from DanceDemo import DanceDemo
import data_parallel
import project
from data_parallel import Ranks, StopRequest
from ddp_helpers import BATCH, one_step, train_one_epoch
from generators import find
from pose_dataset import EpochOrder, PoseDataset
from training import amp_dtype
from training_settings import TRAINING_DEFAULTS
from VideoReader import VideoReader
from VideoSkeleton import VideoSkeleton

LR = TRAINING_DEFAULTS["lr"]
PORTS = iter(range(29600, 29700))   # a free loopback port for each process group


def free_port():
    return next(PORTS) + os.getpid() % 200 * 100


def torchrun_command(*args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
            f"--master_port={free_port()}", *map(str, args)]


def torchrun(*args, nproc=2, env=None):
    return subprocess.run(torchrun_command(*args, nproc=nproc), capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def weights_after_one_step(gen_type, tmp_path, world, sync_batch_norm=True):
    out = tmp_path / f"{gen_type}-{world}-{sync_batch_norm}.pt"
    if world == 1:
        one_step(0, 1, gen_type, 0, out)
    else:
        mp.spawn(one_step, args=(world, gen_type, free_port(), out, sync_batch_norm), nprocs=world)
    return torch.load(out, weights_only=True)


def differences(a, b):
    """(largest difference, share of values further apart than 1e-6) over every network's weights."""
    diffs = [(a[net][k].float() - b[net][k].float()).abs().flatten() for net in a for k in a[net]]
    allv = torch.cat(diffs)
    return allv.max().item(), (allv > 1e-6).float().mean().item()


@pytest.mark.parametrize("gen_type", ["vanilla_nn_ske", "gan", "pix2pix"])
def test_two_ranks_train_as_one_process_on_both_shares(gen_type, tmp_path):
    """One step of 2 ranks x batch B = one step of one process on the 2B frames. Tolerance: Adam's
    first step moves a weight by lr times g / |g|, whatever the gradient's size, so where a
    gradient is ~0 the sign its rounding takes can differ: every weight within 2 lr, and all but
    0.1% within 1e-6 (measured: 0.06% at most, pix2pix's critic)."""
    one = weights_after_one_step(gen_type, tmp_path, 1)
    two = weights_after_one_step(gen_type, tmp_path, 2)
    largest, share = differences(one, two)
    assert largest <= 2 * LR + 1e-7 and share < 1e-3, (largest, share)


def test_batch_norm_must_see_the_global_batch(tmp_path):
    """Without synchronised batch norm, each rank normalises by its own half: another model."""
    one = weights_after_one_step("gan", tmp_path, 1)
    local = weights_after_one_step("gan", tmp_path, 2, sync_batch_norm=False)
    assert differences(one, local)[0] > 10 * LR


def test_the_ranks_shards_make_up_the_one_process_epoch(clip):
    video = VideoSkeleton(clip, progress=False)
    data = PoseDataset(video, np.arange(len(video))[::3], 32)
    one = data.sampler(seed=3)
    one.set_epoch(5)
    shards = []
    for rank in range(2):
        sampler = data.sampler(seed=3, where=Ranks(rank=rank, world_size=2))
        sampler.set_epoch(5)
        shards.append(list(sampler))
    order = list(one)
    assert len(shards[0]) == len(shards[1]) == -(-len(data) // 2)          # the same number of steps
    assert sorted(set(shards[0]) | set(shards[1])) == sorted(order)       # every frame, in one or the other
    assert shards[0] == order[0::2] and shards[1] == (order + order[:1])[1::2]
    other = data.sampler(seed=3)
    other.set_epoch(6)
    assert list(other) != order                                            # reshuffled each epoch


@pytest.mark.parametrize("count, batch, before, after", [(128, 8, 1, 2), (128, 8, 2, 1), (30, 4, 3, 2), (31, 3, 2, 4)])
def test_an_epoch_stopped_under_one_world_size_goes_on_under_another_from_the_same_frame(count, batch, before,
                                                                                        after):
    """Issue 21: 12 of 16 steps of one process, resumed by 2 ranks, counted 12 steps done of their
    8 and trained on nothing more. Progress in frames: the frames before and after together are
    the epoch's, each once (bar the padding that evens the last shares out)."""
    for stopped_after in range(1, -(-count // (batch * before))):
        done, seen = 0, []
        for world, steps in ((before, stopped_after), (after, None)):
            shares = []
            for rank in range(world):
                order = EpochOrder(count, seed=7, where=Ranks(rank=rank, world_size=world))
                order.set_epoch(3, done=done)
                share = list(order)
                shares.append(share[:steps * batch] if steps else share)
            seen += [f for share in shares for f in share]
            done = order.after(steps, batch) if steps else count
        assert sorted(set(seen)) == list(range(count))
        assert len(seen) - count < after  # padding only: fewer repeats than ranks


def test_two_ranks_resume_what_one_process_left(clip, tmp_path, private_cache):
    """Through the training loop: an epoch one process stopped by Ctrl-C after 3 of its 8 steps
    goes on under 2 ranks from the checkpoint's count in frames, and trains on exactly the frames
    it had not (the other way round, and other sizes: the test above)."""
    train, stop_at = 32, 4  # the clip's training frames at --every 1; Ctrl-C as step 4 begins
    VideoSkeleton(clip, progress=False)  # extracted once here; the ranks read the cache
    ckpt, seen = tmp_path / "ckpt.pth", tmp_path / "seen"
    train_one_epoch(0, 1, 0, clip, ckpt, tmp_path / "samples", f"{seen}-1", stop_at)
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 0 and state["partial"]["samples"] == (stop_at - 1) * BATCH
    mp.spawn(train_one_epoch, args=(2, free_port(), clip, ckpt, tmp_path / "samples", f"{seen}-2"), nprocs=2)
    before, after = ([f for r in range(w) for step in json.loads(Path(f"{seen}-{w}-{r}.json").read_text())
                      for f in step] for w in (1, 2))
    assert len(before) == (stop_at - 1) * BATCH and not set(before) & set(after)
    assert len(set(before) | set(after)) == train and len(after) - len(set(after)) < 2  # padding only
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1


def test_torchrun_trains_and_its_model_loads_in_one_process_and_the_demo(clip, tmp_path, private_cache):
    out = tmp_path / "clip_pix2pix.pth"
    env = {"DANCE_CHECKPOINTS": str(tmp_path / "checkpoints")}
    result = torchrun(ROOT / "GenPix2Pix.py", clip, "--epochs", 1, "--every", 2, "--batch-size", 4,
                      "--out", out, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 ranks x batch 4 = global batch 8" in result.stderr and f"wrote {out}" in result.stdout
    assert result.stdout.count("wrote") == 1                             # rank 0 alone reports and writes
    gen = find("pix2pix").cls.load(out)
    assert gen.record["trained_with"] == {"world_size": 2, "batch_per_rank": 4, "global_batch": 8,
                                          "backend": "gloo", "device": "cpu", "precision": "float32"}
    assert gen.epoch == 1 and len(gen.history) == 1
    stats = DanceDemo(clip, "pix2pix", target=clip, model=out, every=6).draw(output=tmp_path / "demo.mp4")
    assert stats["frames"] == 10


def test_ctrl_c_stops_every_rank_and_resume_goes_on(clip, tmp_path, private_cache):
    out, checkpoints = tmp_path / "clip_vanilla_nn_ske.pth", tmp_path / "checkpoints"
    env = {**os.environ, "DANCE_CHECKPOINTS": str(checkpoints)}
    command = torchrun_command(ROOT / "GenVanillaNN.py", clip, "--epochs", 400, "--every", 1, "--batch-size", 2,
                               "--out", out)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
                            preexec_fn=as_in_a_terminal)
    said = read_until(proc, rb"epoch 1:")             # a whole epoch done, the second under way
    proc.send_signal(signal.SIGINT)                     # what Ctrl-C does to torchrun
    _, rest = proc.communicate(timeout=120)
    said = (said + rest).decode(errors="replace")
    assert re.search(r"stopped (during|after) epoch \d+", said), said[-3000:]
    state = torch.load(checkpoints / out.name, weights_only=True)
    assert state["epoch"] >= 1 and not out.exists()
    result = torchrun(ROOT / "GenVanillaNN.py", clip, "--epochs", state["epoch"] + 1, "--every", 1,
                      "--batch-size", 2, "--out", out, "--resume", env={"DANCE_CHECKPOINTS": str(checkpoints)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {checkpoints / out.name} from epoch {state['epoch']}" in result.stderr
    assert find("vanilla_nn_ske").cls.load(out).epoch == state["epoch"] + 1


def test_a_stop_heard_during_the_ranks_vote_counts_at_the_next_vote(monkeypatch):
    """The ranks vote on stopping after every step, in an all-reduce that waits for the
    slowest rank, so a signal mostly arrives during it: its handler runs when the all-reduce
    returns, after the vote was cast. The vote must not clear it (it once did, and both
    ranks trained on until torchrun killed them)."""
    def vote_as_the_signal_arrives(flag, device):
        signal.raise_signal(request.signals[0])      # what gloo's all-reduce returning lets run
        return flag

    cpu = torch.device("cpu")
    monkeypatch.setattr(project, "_last_stop", list(project._last_stop))   # the handler notes the signal there
    with StopRequest() as request:
        assert request.signals, "every stop signal is ignored here: nothing to test with"
        monkeypatch.setattr(data_parallel, "agree", vote_as_the_signal_arrives)
        assert request.agreed(cpu) is False           # every rank got the vote cast before it
        monkeypatch.setattr(data_parallel, "agree", lambda flag, device: flag)
        assert request.agreed(cpu) is True            # and it stops at the next


def test_size_256_end_to_end(clip, tmp_path, private_cache):
    out = tmp_path / "clip_pix2pix.pth"
    result = run("GenPix2Pix.py", clip, "--epochs", 1, "--every", 4, "--size", 256, "--out", out,
                 env={"DANCE_CHECKPOINTS": str(tmp_path / "checkpoints")})
    assert result.returncode == 0, result.stderr[-3000:]
    gen = find("pix2pix").cls.load(out)
    assert gen.config["image_size"] == gen.record["crop_size"] == 256
    assert gen.generate_batch(VideoSkeleton(clip, size=256, progress=False).skeletons[:2]).shape == (2, 256, 256, 3)
    assert list((tmp_path / "cache").glob("*size256*"))
    demo = tmp_path / "demo.mp4"
    DanceDemo(clip, "pix2pix", target=clip, model=out, every=6).draw(output=demo)
    with VideoReader(demo) as video:
        assert video.frame_count == 10
    figures = tmp_path / "e.json"
    result = run("evaluate.py", clip, "--size", 256, "--max-frames", 6, "--edit-bases", 2, "--cross", "--demo-source", "",
                 "--models-dir", tmp_path, "--json", figures, "--grid", tmp_path / "g.png")
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(figures.read_text())
    assert data["settings"]["frame_size"] == 256 and data["rows"]["pix2pix"]["native_size"] == 256
    assert_one_line_error(run("GenPix2Pix.py", clip, "--size", 200, "--out", tmp_path / "x.pth"),
                          "--size 200", "power of two")


def test_mixed_precision_only_where_it_is_safe():
    assert amp_dtype(torch.device("cpu")) is None                     # the CPU trains in float32
    assert amp_dtype(torch.device("cpu"), enabled=False) is None
    if torch.cuda.is_available():
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        assert amp_dtype(torch.device("cuda")) is expected
        assert amp_dtype(torch.device("cuda"), enabled=False) is None
