"""The demo's pipeline: the next frame read and detected on a thread while this one is
generated (pipeline.prefetch), the same pictures as the sequential path, in order, at most one
frame later; the networks run by OpenVINO or ONNX Runtime within a grey level of PyTorch's
pictures; the stage clock; and the benchmark, run tiny (figures printed, no speed asserted)."""
import json
import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, write_clip
from DanceDemo import EMBEDDED_TRACK, DanceDemo
from evaluate import Slowed
from nets import UNet
import pipeline
from pipeline import StageClock, generating_threads, held_logs, prefetch, torch_threads
from pose_detector import PoseDetector
from project import DanceError
import runtime as runtime_module
from runtime import OnnxNet
from subpixel import SubPixelConv, as_subpixel, rewritable

SLOW_S = 0.1   # the slowed generator's pause a frame: 2.5 frame periods of a 25 fps clip
BF16_SHARE = 0.05   # the largest share of a picture's values a bfloat16 network may move by a grey level


def test_prefetch_keeps_the_order_and_asks_for_the_next_item_only_when_there_is_room():
    asked, taken = [], []

    def numbers():
        for k in range(20):
            asked.append(k)
            yield k

    for k in prefetch(numbers()):
        time.sleep(0.005)
        assert len(asked) - len(taken) <= 2   # the one being handed over, and one made ahead
        taken.append(k)
    assert taken == list(range(20))


def test_prefetch_raises_the_producers_error_and_stops_its_thread_when_closed():
    def broken():
        yield 1
        raise ValueError("the source broke")

    items = prefetch(broken())
    assert next(items) == 1
    with pytest.raises(ValueError, match="the source broke"):
        next(items)
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield 0
        finally:
            closed.set()           # closed on the producer's thread, when the consumer stops

    items = prefetch(endless())
    next(items)
    items.close()
    assert closed.wait(5) and not any(t.name == "prefetch" for t in threading.enumerate())


def test_the_stage_clock_times_each_stage_and_each_item():
    clock = StageClock()
    for _ in clock.timed(iter([1, 2, 3]), "read"):
        with clock("work"):
            time.sleep(0.01)
    summary = clock.summary()
    assert list(summary) == ["read", "work"] and summary["work"]["frames"] == 3
    assert summary["work"]["median_ms"] >= 9 and summary["read"]["median_ms"] < summary["work"]["median_ms"]


def test_a_stage_timed_around_another_counts_only_its_own_time(monkeypatch):
    """The demo's smoother: its time per frame, without the wait for the frames it smooths
    (timed as "wait", inside it). A fake clock: the figures are exact."""
    now = [0.0]
    monkeypatch.setattr(pipeline.time, "perf_counter", lambda: now[0])

    def detected():
        for i in range(4):
            now[0] += 0.020          # waiting for detection
            yield i
        now[0] += 0.030              # the end found: the detector closed, no frame

    def smoother(items):             # one frame late, as the median is
        held = None
        for x in items:
            now[0] += 0.005
            if held is not None:
                yield held
            held = x
        yield held

    clock = StageClock()
    assert list(clock.timed(smoother(clock.timed(detected(), "wait")), "smooth", inner="wait")) == [0, 1, 2, 3]
    assert clock.seconds["wait"] == pytest.approx([0.02] * 4) and clock.total["wait"] == pytest.approx(0.11)
    assert clock.seconds["smooth"] == pytest.approx([0.01, 0.005, 0.005, 0.0])
    assert list(clock.summary()) == ["wait", "smooth"]
    clock.seconds["show"] = []                   # a stage that timed no frame is left out
    assert "show" not in clock.summary()


def test_held_logs_hold_this_threads_records_and_let_the_others_through(caplog):
    log = logging.getLogger("dance")
    with caplog.at_level(logging.INFO, logger="dance"):
        with held_logs(log) as held:
            log.info("ours, held")
            other = threading.Thread(target=log.info, args=("another thread's, said",))
            other.start()
            other.join()
        log.info("after, said")
    assert [r.getMessage() for r in held] == ["ours, held"]
    assert [r.getMessage() for r in caplog.records] == ["another thread's, said", "after, said"]

class NormedConv(torch.nn.Module):
    """A small network that reads a batch dict, as the generators' networks do."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)

    def forward(self, batch):
        return torch.tanh(self.norm(self.conv(batch["pose"])) + batch["plate"].mean())


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_an_inference_runtime_runs_a_network_as_pytorch_does_and_leaves_it_in_eval_mode(runtime):
    torch.manual_seed(0)
    net = NormedConv()
    with torch.no_grad():
        net.norm.running_mean.uniform_(-1, 1), net.norm.running_var.uniform_(0.5, 2)
        batch = {"pose": torch.randn(2, 3, 16, 16), "plate": torch.randn(2, 3, 16, 16), "frame": torch.arange(2)}
        runner = OnnxNet(net, runtime=runtime)
        ran = runner(batch)
        assert runner.precision == "f32"
        assert not net.training                                      # the exporter put back eval mode
        torch.testing.assert_close(ran, net(batch), rtol=0, atol=1e-5)  # eval mode: the running statistics
        assert not torch.allclose(ran, net.train()(batch), atol=1e-3)  # ... not the batch's


def test_a_transposed_convolution_rewritten_as_a_sub_pixel_one_computes_the_same():
    torch.manual_seed(0)
    unet = UNet(in_channels=5, base=8, levels=3, out_channels=4, tanh=False).eval()  # the last one with a bias
    with torch.no_grad():
        for m in unet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
        x = torch.randn(2, 5, 24, 40)
        rewritten = as_subpixel(unet)
        assert sum(map(rewritable, unet.modules())) == 3 and not any(map(rewritable, rewritten.modules()))
        torch.testing.assert_close(rewritten(x), unet(x), rtol=0, atol=1e-5)
        assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in unet.modules()) == 3   # the original untouched
        odd, y = torch.nn.ConvTranspose2d(3, 5, 4, 2, 1), torch.randn(1, 3, 7, 9)          # odd sizes, a bias
        torch.testing.assert_close(SubPixelConv(odd)(y), odd(y), rtol=0, atol=1e-5)
    assert not rewritable(torch.nn.ConvTranspose2d(26, 128, 4, 1, 0))   # the seed's first layer: another function


def test_openvino_in_bfloat16_runs_transposed_convolutions_as_sub_pixel_ones(monkeypatch):
    exported = []
    export = runtime_module.export_onnx
    monkeypatch.setattr(runtime_module, "export_onnx", lambda net, batch: exported.append(net) or export(net, batch))
    monkeypatch.setattr(runtime_module, "cpu_has_bf16", lambda: True)   # the export's choice, on any CPU
    unet, batch = UNet(in_channels=3, base=8, levels=3).eval(), {"pose": torch.randn(1, 3, 32, 32)}
    for precision in ("f32", "bf16"):
        runner = OnnxNet(unet, runtime="openvino", precision=precision)
        with torch.no_grad():
            assert (runner(batch) - unet(batch)).abs().max() < (0.05 if runner.precision == "bf16" else 1e-5)
        rewritten = any(isinstance(m, SubPixelConv) for m in exported[-1].modules())
        assert runner.precision == precision and rewritten == (precision == "bf16")
        assert (exported[-1] is unet) != rewritten     # a copy rewritten, the network itself untouched


def test_openvino_computes_in_bfloat16_only_where_asked_and_where_the_cpu_can(monkeypatch):
    torch.manual_seed(0)
    net, batch = NormedConv().eval(), {"pose": torch.randn(1, 3, 16, 16), "plate": torch.randn(1, 3, 16, 16)}
    with torch.no_grad():
        reference = net(batch)
        if runtime_module.cpu_has_bf16():       # this project's CPU has it: bfloat16's 3 digits show
            half = OnnxNet(net, runtime="openvino", precision="bf16")
            out = half(batch)
            assert half.precision == "bf16" and 1e-5 < (out - reference).abs().max() < 0.1
        monkeypatch.setattr(runtime_module, "cpu_has_bf16", lambda: False)
        full = OnnxNet(net, runtime="openvino", precision="bf16")
        torch.testing.assert_close(full(batch), reference, rtol=0, atol=1e-5)
        assert full.precision == "f32"
    with pytest.raises(ValueError, match="precision"):
        OnnxNet(net, runtime="openvino", precision="f16")


def test_the_runtime_asked_for_runs_or_the_other_one_or_pytorch(monkeypatch):
    monkeypatch.delenv("DANCE_RUNTIME", raising=False)
    net = torch.nn.Conv2d(3, 3, 1)
    assert runtime_module.runtime_net(net, "openvino", "cpu").runtime == "openvino"
    monkeypatch.setattr(runtime_module, "available", lambda runtime: runtime == "onnxruntime")
    runner = runtime_module.runtime_net(net, "openvino", "cpu", 1, "bf16")
    assert runner.runtime == "onnxruntime" and runner.threads == 1
    monkeypatch.setattr(runtime_module, "available", lambda runtime: False)
    assert runtime_module.runtime_net(net, "openvino", "cpu") is net
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        runtime_module.runtime_net(net, "tensorrt", "cpu")
    assert runtime_module.chosen("openvino") == "openvino"
    monkeypatch.setenv("DANCE_RUNTIME", "torch")              # a demo: the environment's word over the code's
    assert runtime_module.chosen("openvino") == "torch"
    monkeypatch.setenv("DANCE_RUNTIME", "onnxruntime")
    assert runtime_module.chosen("torch") == "onnxruntime"
    assert isinstance(runtime_module.runtime_net(net, "torch", "cpu"), torch.nn.Conv2d)  # evaluate's: PyTorch
    monkeypatch.setenv("DANCE_RUNTIME", "onnx")               # a typo is an error, not the default
    with pytest.raises(ValueError, match="DANCE_RUNTIME='onnx' names no runtime"):
        runtime_module.chosen("openvino")


def test_a_demo_takes_dance_runtime_over_its_argument_and_a_wrong_name_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("DANCE_RUNTIME", raising=False)
    with pytest.raises(DanceError, match="unknown runtime 'openvno'; choose one of torch, onnxruntime, openvino"):
        DanceDemo(EMBEDDED_TRACK, "layered", runtime="openvno")
    monkeypatch.setenv("DANCE_RUNTIME", "Torch")
    with pytest.raises(DanceError, match="DANCE_RUNTIME='Torch' names no runtime"):
        DanceDemo(EMBEDDED_TRACK, "layered")
    monkeypatch.setenv("DANCE_RUNTIME", "torch")
    assert isinstance(DanceDemo(EMBEDDED_TRACK, "layered").generator._runner, torch.nn.Module)


def pictures(demo):
    return [picture for picture, _ in demo.pictures()]


def test_the_overlapped_path_makes_the_same_pictures_as_the_sequential_one(tmp_path, karate_frames):
    short = write_clip(tmp_path / "short.mp4", karate_frames[:20])
    overlapped = DanceDemo(short, "layered", overlap=True, runtime="torch")
    sequential = DanceDemo(short, "layered", overlap=False, runtime="torch")
    a = pictures(overlapped)
    with torch_threads(overlapped.threads):  # the overlapped path's thread count: sums added in the same order
        b = pictures(sequential)
    assert len(a) == len(b) == 20 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert {"read", "detect", "wait", "smooth", "generate", "compose"} <= set(overlapped.clock.summary())
    # An inference runtime running the network: within one grey level of PyTorch's pictures (the
    # reference). ONNX Runtime (float32) on next to no pixel values; the demo's, OpenVINO, in
    # bfloat16 where this CPU has it (the layered generator allows it), on a few of them.
    reference = np.stack(a).astype(np.int16)
    for runtime, share in (("onnxruntime", 1e-4), ("openvino", BF16_SHARE)):
        demo = DanceDemo(short, "layered", runtime=runtime)
        differ = np.abs(np.stack(pictures(demo)).astype(np.int16) - reference)
        assert differ.max() <= 1 and (differ > 0).mean() < share, (runtime, differ.max(), (differ > 0).mean())
    runner = demo.generator._runner
    assert runner.runtime == "openvino"
    assert runner.precision == ("bf16" if runtime_module.cpu_has_bf16() else "f32")


def live_run(clip, overlap):
    demo = DanceDemo(clip, "vanilla_nn_ske", live=True, overlap=overlap, smooth="none")
    demo.generator = Slowed(demo.generator, SLOW_S)
    frames = []
    for _, frame in demo.pictures():
        frames.append((frame.captured, time.monotonic(), int(frame.caption.split()[-1])))
    generate = demo.clock.summary()["generate"]["median_ms"] / 1000
    return frames, generate


def test_live_the_overlapped_path_keeps_the_order_and_is_at_most_one_frame_later(clip):
    """With a generator slower than the camera, frames are dropped, never reordered, and a
    picture is at most one generation later than the sequential path makes it."""
    overlapped, generate = live_run(clip, overlap=True)
    sequential, _ = live_run(clip, overlap=False)
    for frames in (overlapped, sequential):
        seqs = [seq for _, _, seq in frames]
        assert seqs == sorted(set(seqs)) and len(seqs) < 60    # in order, never twice; some dropped
    latency = {name: np.median([shown - captured for captured, shown, _ in frames])
               for name, frames in (("overlapped", overlapped), ("sequential", sequential))}
    assert latency["overlapped"] <= latency["sequential"] + generate + 0.05, (latency, generate)


def test_the_generator_takes_the_cores_detection_leaves_and_pytorch_gets_its_count_back(monkeypatch):
    for cores, threads in ((1, 1), (2, 1), (16, 15)):
        monkeypatch.setattr(pipeline, "usable_cores", lambda: cores)
        assert generating_threads() == threads
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    with torch_threads(None):
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before
    # Two demos at once (the web page): the count comes back when the last one leaves, whatever the order.
    first, second = torch_threads(1), torch_threads(1)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert torch.get_num_threads() == 1
    second.__exit__(None, None, None)
    assert torch.get_num_threads() == before


def test_the_cores_usable_are_at_most_a_containers_cpu_quota(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(pipeline, "CGROUP_CPU_MAX", str(quota))
    quota.write_text("150000 100000\n")     # 1.5 CPUs: 2 cores' worth of threads
    assert pipeline.usable_cores() == min(2, len(os.sched_getaffinity(0)))
    quota.write_text("max 100000\n")
    assert pipeline.usable_cores() == len(os.sched_getaffinity(0))


def test_a_live_demo_starts_its_models_before_the_camera_and_generates_on_the_cores_left(clip, tmp_path,
                                                                                         monkeypatch):
    """Live, a first frame's one-time costs are paid before the capture's thread starts (the
    network's session in the demo's runtime, OpenVINO, built and run once; MediaPipe's models
    started on the first frame), so that no frame is dropped to them; overlapped, the generator runs on the threads
    detection leaves it, and PyTorch's thread count is put back when the demo ends."""
    started = []
    warm_detector = PoseDetector.warm_up

    def warm_up(detector, image):
        started.append(demo.source.capture._thread is not None)
        warm_detector(detector, image)

    monkeypatch.setattr(PoseDetector, "warm_up", warm_up)
    demo = DanceDemo(clip, "pix2pix", live=True)
    runner = demo.generator._runner
    assert isinstance(runner, OnnxNet) and runner.runtime == "openvino" and runner.session is not None
    assert demo.source.capture._thread is None
    assert runner.threads == demo.threads == min(torch.get_num_threads(), generating_threads())
    inside, generate = [], demo.generator.generate
    demo.generator.generate = lambda ske: (inside.append(torch.get_num_threads()), generate(ske))[1]
    before = torch.get_num_threads()
    stats = demo.draw(output=tmp_path / "live.mp4")
    assert started == [False] and stats["frames"] > 0 and set(inside) == {demo.threads}
    assert torch.get_num_threads() == before


def test_each_run_of_a_demo_times_its_own_stages(clip, tmp_path):
    demo = DanceDemo(clip, "nearest", target=clip)
    first, again = demo.draw(output=tmp_path / "a.mp4"), demo.draw(output=tmp_path / "b.mp4")
    generated = first["frames"] - first["missing"]
    assert generated > 0 and first["stages_ms"]["generate"]["frames"] == generated
    assert again["stages_ms"]["generate"]["frames"] == generated   # not the two runs' together


def test_the_benchmark_runs_tiny_and_writes_its_figures(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmark.py"), "--tiny", "--generators", "layered",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert set(figures["offline"]) == {"layered"}
    assert all(set(gens) == {"layered"} for gens in figures["live"].values())
    for paths in figures["offline"].values():
        assert set(paths) == {"now", "before"} and paths["now"]["frames"] > 0
        assert "generate" in paths["now"]["stages_ms"]
    assert len(figures["live"]) == 3 and "Stages, ms per frame" in done.stdout and "ratio" in done.stdout
    speed = figures["machine"]["detect_alone_ms"]                  # the machine's speed, at both ends
    assert set(speed) == {"start", "end"} and all(0 < ms < 1000 for ms in speed.values()) and "its speed" in done.stdout
