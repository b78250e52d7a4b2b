"""The learned generators: colour conventions, learning, checkpoints, the held-out split."""
import numpy as np
import pytest
import torch

import training as T
from checkpoints import load_checkpoint
from ema import ema_decay
from GenGAN import GenGAN
from GenPix2Pix import GenPix2Pix
from GenVanillaNN import GenVanillaNN
from nets import images_to_tensor, pick_device, tensor_to_images
from poses import LIMBS, pose_images, pose_maps
from project import DanceError
from Skeleton import Skeleton, full_landmarks
from trainer_cli import trainer_parser
from training_settings import TRAINING_DEFAULTS, setting_flags
from VideoSkeleton import VideoSkeleton, split_indices

KINDS = [("ske", GenVanillaNN), ("image", GenVanillaNN), ("ske", GenGAN)]


def make(input, cls, **config):
    return cls(device="cpu", **config) if cls is GenGAN else cls(input=input, device="cpu", **config)


@pytest.fixture(scope="module")
def tiny_batch():
    """8 poses and 8 target images with some structure (blurred noise), as a training batch."""
    rng = np.random.default_rng(0)
    vectors = (0.5 + rng.uniform(-0.3, 0.3, (8, 26))).astype(np.float32)
    images = rng.integers(0, 255, (8, 8, 8, 3), dtype=np.uint8).repeat(8, axis=1).repeat(8, axis=2)
    return {"vector": torch.from_numpy(vectors), "image": images_to_tensor(images),
            "pose": images_to_tensor(pose_images(full_landmarks(vectors), 64))}


def test_colour_conventions_round_trip():
    blue = np.zeros((1, 4, 4, 3), np.uint8)
    blue[..., 0] = 255  # BGR: pure blue
    t = images_to_tensor(blue)
    assert t.shape == (1, 3, 4, 4)
    assert torch.all(t[:, 2] == 1) and torch.all(t[:, 0] == -1)  # RGB in [-1, 1]: blue is channel 2
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 5, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tensor_to_images(images_to_tensor(images)), images)


def test_split_holds_out_the_final_fraction_by_time():
    train, val = split_indices(100, 0.15)
    assert list(val) == list(range(85, 100)) and list(train) == list(range(85))


def test_pose_images_draw_where_the_joints_are():
    vec = Skeleton.from_array(np.tile([0.5, 0.5], 13)).vector()
    vec[10:12] = (0.25, 0.75)  # left wrist
    im = pose_images(full_landmarks(vec[None]), 64)[0]
    assert im[48, 16].any() and not im[5, 60].any()


@pytest.mark.parametrize("input, cls", KINDS)
def test_each_generator_overfits_a_tiny_batch(tiny_batch, input, cls):
    gen = make(input, cls, lr=1e-3)
    first = gen.train_step(tiny_batch)["l1"]
    for _ in range(60):
        last = gen.train_step(tiny_batch)["l1"]
    assert last < first / 2, (first, last)  # L1 at least halved in 60 steps


@pytest.mark.parametrize("input, cls", KINDS)
def test_generate_returns_bgr_uint8_and_save_load_is_exact(tiny_batch, tmp_path, input, cls):
    gen = make(input, cls)
    for _ in range(3):
        gen.train_step(tiny_batch)
    ske = Skeleton.from_array(tiny_batch["vector"][0].numpy())
    image = gen.generate(ske)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    gen.save(tmp_path / "g.pth")
    again = cls.load(tmp_path / "g.pth")
    np.testing.assert_array_equal(again.generate(ske), image)
    np.testing.assert_array_equal(again.generate_batch(tiny_batch["vector"].numpy()),
                                  gen.generate_batch(tiny_batch["vector"].numpy()))
    assert "optG" not in torch.load(tmp_path / "g.pth", weights_only=True)  # shipped files stay small


def test_a_checkpoint_saved_on_another_device_loads_on_cpu(tmp_path, monkeypatch):
    gen = GenVanillaNN(input="ske", device="cpu")
    # Make torch.save label every tensor as living on cuda:0, as a GPU-trained checkpoint is.
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    gen.save(tmp_path / "gpu.pth", training=True)
    monkeypatch.undo()
    if not torch.cuda.is_available():  # the file really claims CUDA storage
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu.pth", weights_only=True)
    loaded = GenVanillaNN.load(tmp_path / "gpu.pth", device="cpu")
    assert next(loaded.netG.parameters()).device.type == "cpu"
    vec = np.full((1, 26), 0.5, np.float32)
    np.testing.assert_array_equal(loaded.generate_batch(vec), gen.generate_batch(vec))


def test_wrong_or_damaged_checkpoints_are_clear_errors(tmp_path):
    GenVanillaNN(input="image", device="cpu").save(tmp_path / "vanilla.pth")
    with pytest.raises(DanceError, match="not a GenGAN"):
        GenGAN.load(tmp_path / "vanilla.pth")
    data = (tmp_path / "vanilla.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(DanceError, match="cut.pth"):
        GenVanillaNN.load(tmp_path / "cut.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(DanceError, match="text.pth"):
        load_checkpoint(tmp_path / "text.pth", "GenVanillaNN")
    with pytest.raises(DanceError, match="no such model"):
        GenVanillaNN.load(tmp_path / "missing.pth")


@pytest.fixture
def small_target(clip):
    return VideoSkeleton(clip, every=2, progress=False)


def test_training_logs_held_out_l1_and_resumes_after_ctrl_c(small_target, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "SAMPLES_DIR", tmp_path / "samples")
    ckpt, out = tmp_path / "ckpt.pth", tmp_path / "model.pth"
    gen = GenGAN(device="cpu", batch_size=4)
    real_step, calls = gen.train_step, [0]

    def step_then_interrupt(batch):
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt
        return real_step(batch)

    gen.train_step = step_then_interrupt
    with pytest.raises(KeyboardInterrupt):
        gen.train(small_target, epochs=3, every=1, checkpoint=ckpt, out=out, progress=False)
    assert ckpt.exists() and not out.exists()
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 1 and "optD" in state  # one whole epoch (4 steps), then Ctrl-C in the second

    resumed = GenGAN.load(ckpt)
    history = resumed.train(small_target, epochs=3, every=1, checkpoint=ckpt, out=out, progress=False)
    assert resumed.epoch == 3 and [h["epoch"] for h in history] == [1, 2, 3]
    assert all(0 <= h["val_l1"] <= 1 and h["nearest_val_l1"] > 0 for h in history)
    assert resumed.record["train_frames"] == len(small_target) - round(0.15 * len(small_target))
    # the model says whose person it renders and how its crops were cut, as the demo needs
    record = GenGAN.load(out).record
    assert record["target"] == "clip.mp4" and record["crop_margin"] == small_target.settings["crop_margin"]
    assert record["crop_size"] == small_target.size and set(record["target_stats"]) >= {"far", "near"}
    assert out.exists() and len(list((tmp_path / "samples").glob("*.png"))) == 3


# ---- the pix2pix-class generator (GEN_TYPE 5) ----
def test_pose_map_is_deterministic_and_draws_each_limb_where_its_joints_are():
    lm = np.full((33, 4), np.nan, np.float32)
    lm[:, 3] = 1
    lm[13, :2] = (0.25, 0.25)  # left elbow
    lm[15, :2] = (0.75, 0.25)  # left wrist
    first, again = pose_maps(lm[None], 64)[0], pose_maps(lm[None].copy(), 64)[0]
    np.testing.assert_array_equal(first, again)
    forearm = [c for a, b, c in LIMBS if (a, b) == (13, 15)][0]
    assert tuple(first[16, 32]) == forearm              # half-way along the forearm: its colour
    assert (first[16, 16] == 255).all() and (first[16, 48] == 255).all()  # the joints, marked white
    assert not first[48:, :].any()                      # nothing drawn where no limb is
    mirrored = lm.copy()
    mirrored[[14, 16], :2], mirrored[[13, 15], :2] = lm[[13, 15], :2], np.nan  # the same arm, right side
    assert tuple(pose_maps(mirrored[None], 64)[0][16, 32]) != forearm    # left and right differ


def test_pose_map_uses_the_extra_landmarks_a_reduced_skeleton_does_not_know():
    ske = Skeleton.from_array(np.tile([0.5, 0.5], 13).astype(np.float32) + np.linspace(0, 0.4, 26, dtype=np.float32))
    full = ske.landmarks.copy()
    full[np.isnan(full)] = 0.3  # face, hands and feet now known
    reduced, rich = pose_maps(ske.landmarks[None], 64)[0], pose_maps(full[None], 64)[0]
    assert rich.astype(bool).sum() > reduced.astype(bool).sum()


@pytest.fixture(scope="module")
def tiny_pix2pix_batch():
    rng = np.random.default_rng(0)
    skeletons = np.concatenate([0.5 + rng.uniform(-0.3, 0.3, (4, 33, 2)), np.ones((4, 33, 2))], 2).astype(np.float32)
    images = rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8).repeat(8, axis=1).repeat(8, axis=2)
    return {"image": images_to_tensor(images), "pose": images_to_tensor(pose_maps(skeletons, 64)),
            "skeletons": skeletons}


def test_pix2pix_overfits_a_tiny_batch_and_its_ema_follows(tiny_pix2pix_batch):
    gen = GenPix2Pix(device="cpu", image_size=64, lr=1e-3, ema_decay=0.9, g_base=16, d_base=8)
    first = gen.train_step(tiny_pix2pix_batch)
    assert set(first) >= {"g_adv", "fm", "l1", "d_real", "d_fake", "d"}
    for _ in range(80):
        last = gen.train_step(tiny_pix2pix_batch)
    assert last["l1"] < first["l1"] / 2, (first["l1"], last["l1"])
    gen.end_epoch(SimpleData(tiny_pix2pix_batch))
    out = gen.generate_batch(tiny_pix2pix_batch["skeletons"]).astype(np.float32)
    real = tensor_to_images(tiny_pix2pix_batch["image"]).astype(np.float32)
    assert np.abs(out - real).mean() / 255 < first["l1"] / 2  # the EMA generator, in eval mode, learned too


class SimpleData:
    """The part of PoseDataset that GenPix2Pix.end_epoch uses."""

    def __init__(self, batch):
        self.b = batch

    def __len__(self):
        return len(self.b["pose"])

    def batch(self, idx, device):
        return {"pose": self.b["pose"][idx], "image": self.b["image"][idx]}


def test_pix2pix_save_load_keeps_the_ema_weights_and_drops_the_critic(tiny_pix2pix_batch, tmp_path):
    gen = GenPix2Pix(device="cpu", image_size=64, g_base=16, d_base=8)
    for _ in range(3):
        gen.train_step(tiny_pix2pix_batch)
    gen.save(tmp_path / "p.pth")
    state = torch.load(tmp_path / "p.pth", weights_only=True)
    assert "netG_ema" in state and not {"netD", "optG", "netG"} & set(state)
    again = GenPix2Pix.load(tmp_path / "p.pth")
    ske = Skeleton(tiny_pix2pix_batch["skeletons"][0])
    image = again.generate(ske)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, gen.generate(ske))
    gen.save(tmp_path / "full.pth", training=True)
    resumed = GenPix2Pix.load(tmp_path / "full.pth")
    assert all(torch.equal(a, b) for a, b in zip(resumed.netD.state_dict().values(), gen.netD.state_dict().values()))
    # The optimisers' states come back too (exact resume), into optimisers made at their first use.
    for name in ("optG", "optD"):
        want, got = getattr(gen, name).state_dict(), getattr(resumed, name).state_dict()
        assert want["param_groups"] == got["param_groups"] and want["state"].keys() == got["state"].keys()
        assert all(torch.equal(want["state"][k][v], got["state"][k][v]) for k in want["state"]
                   for v in ("exp_avg", "exp_avg_sq", "step"))


@pytest.mark.parametrize("make_gen", [lambda: GenVanillaNN(input="ske", device="cpu"), lambda: GenGAN(device="cpu"),
                                      lambda: GenPix2Pix(device="cpu", image_size=64, g_base=16, d_base=8)])
def test_an_optimiser_is_made_at_its_first_use_on_its_networks_parameters(make_gen, tiny_pix2pix_batch, tmp_path):
    """Inference never makes one (the first Adam of a process imports about 850 modules, 1 s);
    a training step makes it once, over the parameters of the network it trains."""
    gen = make_gen()
    gen.save(tmp_path / "g.pth")
    loaded = type(gen).load(tmp_path / "g.pth")
    loaded.generate_batch(tiny_pix2pix_batch["skeletons"][:2])
    assert not {"optG", "optD"} & set(vars(loaded))
    for name, net in (("optG", "netG"), ("optD", "netD")):
        if hasattr(gen, net):
            optimiser = getattr(gen, name)
            assert optimiser is getattr(gen, name) and vars(gen)[name] is optimiser
            assert [p for g in optimiser.param_groups for p in g["params"]] == list(getattr(gen, net).parameters())
            assert optimiser.defaults["lr"] == gen.config["lr"]
    if isinstance(gen, GenPix2Pix):                      # a training step uses them, and keeps them
        made = gen.optG, gen.optD
        gen.train_step(tiny_pix2pix_batch)
        assert (vars(gen)["optG"], vars(gen)["optD"]) == made and gen.optG.state


# ---- the shared base class ----
def test_settings_come_from_the_class_defaults_and_unknown_ones_are_refused():
    gen = GenPix2Pix(device="cpu", image_size=64, g_base=8, d_base=8)
    assert gen.config["batch_size"] == GenPix2Pix.defaults["batch_size"] and gen.config["lr"] == TRAINING_DEFAULTS["lr"]
    assert GenVanillaNN(device="cpu").config["image_size"] == TRAINING_DEFAULTS["image_size"]
    with pytest.raises(DanceError, match="no setting temporal"):
        GenPix2Pix(device="cpu", temporal=True)
    with pytest.raises(DanceError, match="--input must be one of"):
        GenVanillaNN(device="cpu", input="video")


def test_device_mistakes_are_clear_errors():
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(DanceError, match="not a device"):
        pick_device("bogus")
    if not torch.cuda.is_available():
        with pytest.raises(DanceError, match="no CUDA GPU"):
            pick_device("cuda")
    else:
        with pytest.raises(DanceError, match="CUDA GPU"):
            pick_device(f"cuda:{torch.cuda.device_count()}")
    with pytest.raises(DanceError, match="meta devices cannot run this project"):
        pick_device("meta")
    if not torch.backends.mps.is_available():
        with pytest.raises(DanceError, match="MPS is not available"):
            pick_device("mps")



def test_the_average_warms_up_then_keeps_its_decay():
    decays = [ema_decay(0.999, n) for n in (0, 10, 100, 1000, 20000)]
    assert decays[0] == pytest.approx(0.1) and decays == sorted(decays) and decays[-1] == 0.999
    assert ema_decay(0.999, 384) < 0.98  # a short training's average follows the network


def test_a_trainers_setting_flags_are_derived_from_its_settings_dataclass():
    for cls in (GenGAN, GenPix2Pix, GenVanillaNN):
        parser = trainer_parser(cls)
        flags = setting_flags(cls.settings, shared=True) + setting_flags(cls.settings, shared=False)
        assert {name for name, *_ in flags} >= {"batch_size", "lr", "seed"}
        for name, kind, default, _, choices in flags:
            assert parser.get_default(name) == cls.defaults[name] == default and isinstance(default, kind)
            assert choices is None or default in choices
        assert set(cls.setting_ranges()) <= set(cls.defaults)
