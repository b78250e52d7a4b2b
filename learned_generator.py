"""The base class of every learned generator: its settings, networks, inference, training
(training.fit) and model files."""
import torch

from checkpoints import load_checkpoint, save_checkpoint
from data_parallel import Ranks, distribute, ranks, unwrap
from generator_base import Generator, finite_number
from nets import images_to_tensor, pick_device, tensor_to_images
from optimisers import AdamOf
from poses import STICK_FIGURES
from provenance import MAX_FRAMES, check_record, check_renderer, split_config, whole
from runtime import runtime_net
from Skeleton import reduced_vectors
from training import fit
from training_settings import (EPOCHS, NO_PROGRESS, TRAIN_EVERY, TRAINING_DEFAULTS, TRAINING_RANGES, TrainingSettings,
                               check_settings, settings_defaults, settings_ranges)
from project import DanceError


class LearnedGenerator(Generator):
    """A generator with networks trained on one target: `generate`, `generate_batch`, `reset`,
    `config` (its settings), `record` (what it was trained on: provenance.py) (Generator), plus
    `train`, `save` and `load`.

    Subclasses set:
      kind         the name written into its files (a file says which class it holds)
      name         its name in the generator table (or `model_name(config)` when it depends
                   on a setting): its model file is models/<target>_<name>.pth
      settings     its settings dataclass (a training_settings.TrainingSettings): `defaults`
                   and `ranges`, its trainer's flags and their checks are derived from it
      net_inputs   what its generator network reads of a batch: "vector" and/or "pose"
      shipped      attributes (networks) a model file holds, enough to generate
      resumable    attributes a training checkpoint holds besides (optimisers, critics)
      trained      the networks train_step runs, wrapped for data parallelism under torchrun
      render_poses how a skeleton is drawn for its networks (a poses.PoseRenderer: its
                   `channels` are the pose input's width)
    and implement `build` (create the networks), `train_step`, and, when the network that
    makes the images is not netG, `inference_net`. `optG` is netG's Adam, made at its first use
    (optimisers.AdamOf: inference never needs one); a critic's is `optD = AdamOf("netD")`.
    """

    kind = "LearnedGenerator"
    learned = True
    image_at_crop_size = False  # True: --size sets image_size too (the network is sized from it)
    settings = TrainingSettings
    defaults = settings_defaults(TrainingSettings)  # derived from `settings` (see __init_subclass__)
    ranges = settings_ranges(TrainingSettings)
    net_inputs = ("vector",)
    shipped = ("netG",)
    resumable = ("optG",)
    trained = ("netG",)
    render_poses = STICK_FIGURES
    optG = AdamOf("netG")
    runtime = "torch"            # what runs the network at inference (runtime.py; see use_runtime)
    # The arithmetic a runtime may run the network in (runtime.PRECISIONS): float32, unless a
    # generator's pictures are shown to stay within a grey level in bfloat16 (GenLayered).
    inference_precision = "f32"

    def __init_subclass__(cls, **kwargs):
        """A subclass's defaults and ranges: its settings dataclass's."""
        super().__init_subclass__(**kwargs)
        cls.defaults, cls.ranges = settings_defaults(cls.settings), settings_ranges(cls.settings)

    def __init__(self, device=None, record=None, **config):
        """`config`: settings that differ from the defaults (a DanceError for an unknown one or a
        value of the wrong kind or out of range); `record`: what it was trained on, as a model
        file holds it (None: a new generator, recorded by `train`)."""
        settings = {**TRAINING_DEFAULTS, **self.defaults}
        unknown = set(config) - set(settings)
        if unknown:
            raise DanceError(f"{self.kind} has no setting {', '.join(sorted(unknown))}; "
                             f"its settings are {', '.join(settings)}")
        self.config = {**settings, **config}
        check_settings(settings, self.config, self.setting_ranges())
        self.record = {} if record is None else dict(check_record(record))
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        torch.manual_seed(self.config["seed"])
        self.build()
        self.epoch, self.history, self.partial = 0, [], dict(NO_PROGRESS)
        self.where = Ranks()  # which rank of a torchrun job trains it (see `distribute`)

    @classmethod
    def setting_ranges(cls):
        """The range of each numeric setting: the shared ones', then the class's own."""
        return {**TRAINING_RANGES, **cls.ranges}

    def distribute(self, sync_batch_norm=True):
        """Wrap the trained networks for data-parallel training (data_parallel.distribute), as this rank."""
        self.where = ranks()
        for name in self.trained:
            setattr(self, name, distribute(getattr(self, name), self.device, sync_batch_norm))

    def build(self):
        """Create the networks this config describes (netG at least; their optimisers are made at
        their first use: `optG`, AdamOf)."""
        raise NotImplementedError

    @property
    def inference_net(self):
        """The network that makes the images at inference."""
        return unwrap(self.netG)

    # -- inference --
    def use_runtime(self, runtime, threads=None):
        """Run the network at inference with `runtime`: "torch" (the reference, the default here),
        "openvino" (the demo's) or "onnxruntime" (runtime.py: pictures within a grey level of
        PyTorch's, faster on a CPU), on `threads` threads (the runtime's; None: as many as PyTorch's)."""
        self.runtime, self._threads, self._runner = runtime, threads, None
        self._inference_runner()   # chosen now (and said, in a log line), not at the first frame

    def _inference_runner(self):
        net = self.inference_net
        if net.training:        # eval() walks every submodule (0.35 ms a frame); train() sets them all
            net.eval()
        runner, made_for = getattr(self, "_runner", None), getattr(self, "_runner_net", None)
        if runner is None or made_for is not net:
            threads = getattr(self, "_threads", None)
            runner = runtime_net(net, self.runtime, self.device, threads, self.inference_precision)
            self._runner, self._runner_net = runner, net
        return self._runner

    @torch.no_grad()
    def make_images(self, landmarks):
        """(N, 33, 4) landmarks in crop coordinates -> (N, S, S, 3) BGR uint8 images."""
        net = self._inference_runner()
        batch = {"skeleton": torch.from_numpy(landmarks)}
        if "vector" in self.net_inputs:
            batch["vector"] = torch.from_numpy(reduced_vectors(landmarks)).to(self.device)
        if "pose" in self.net_inputs:
            batch["pose"] = images_to_tensor(self.render_poses(landmarks, self.config["image_size"])).to(self.device)
        return tensor_to_images(net(self.complete(batch)))

    def complete(self, batch, rng=None):
        """The batch with whatever the generator network reads beyond a dataset's fields
        (GenWarp: its reference frames, moved to the asked poses); `rng` draws what training
        draws (None at inference: deterministic). Most networks need nothing more."""
        return batch

    # -- training --
    def train_step(self, batch):
        """One optimisation step on a batch (PoseDataset.batch); returns the losses as floats."""
        raise NotImplementedError

    def end_epoch(self, data):
        """Called after each epoch with the training set, before validation (a hook)."""

    def train(self, videoSke, epochs=EPOCHS, every=TRAIN_EVERY, checkpoint=None, out=None, progress=True,
              amp=True):
        """Train on the target's training split up to `epochs` epochs in all; see `fit`."""
        return fit(self, videoSke, epochs, every, checkpoint, out, progress, amp)

    # -- persistence --
    def state(self, training=True):
        """Everything to rebuild this generator (and, with training=True, to resume training)."""
        names = self.shipped + (self.resumable if training else ())
        state = {"kind": self.kind, "config": self.config, "record": self.record, "epoch": self.epoch,
                 "history": self.history,
                 **{name: unwrap(getattr(self, name)).state_dict() for name in names}}
        if training:
            state["partial"] = self.partial  # how far into the next epoch it got
        return state

    def load_state(self, state):
        for name in self.shipped:
            unwrap(getattr(self, name)).load_state_dict(state[name])
        for name in self.resumable:
            if name in state:
                unwrap(getattr(self, name)).load_state_dict(state[name])
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.partial = self.check_progress(state.get("partial", NO_PROGRESS))

    def check_progress(self, partial):
        """How far into an epoch a checkpoint got, each number of its kind and in range (a
        ValueError otherwise). One written before progress was counted in frames has steps
        alone: the frames those steps took under the world size it was trained with."""
        train_frames = self.record.get("train_frames", MAX_FRAMES)
        step = partial["step"]
        if "samples" not in partial and whole(0, MAX_FRAMES)(step):
            ran = self.record.get("trained_with") or {}
            batch = ran.get("batch_per_rank", self.config["batch_size"])
            partial = {**partial, "samples": min(train_frames, step * batch * ran.get("world_size", 1))}
        samples, sums, seconds = partial["samples"], partial["sums"], partial["seconds"]
        if not (whole(0, MAX_FRAMES)(step) and whole(0, train_frames)(samples) and (samples > 0) == (step > 0)
                and finite_number(seconds) and seconds >= 0 and isinstance(sums, dict)
                and all(isinstance(k, str) and finite_number(v) for k, v in sums.items())):
            raise ValueError(f"a damaged record of progress into the epoch (step {step!r}, frames {samples!r} of "
                             f"{train_frames}, seconds {seconds!r})")
        return {"step": step, "samples": samples, "sums": dict(sums), "seconds": float(seconds)}

    def save(self, path, training=False):
        """Write a checkpoint: the shipped networks and the config (and, with training=True,
        everything needed to go on training)."""
        save_checkpoint(path, self.state(training))

    @classmethod
    def load(cls, path, device=None):
        state = load_checkpoint(path, cls.kind)
        # A file written before the record was kept apart holds it inside its config.
        settings, record = (state["config"], state["record"]) if "record" in state else split_config(state["config"])
        if not isinstance(record, dict):
            raise DanceError(f"{path}: its record of what it was trained on is damaged; train it again")
        try:
            gen = cls(device=device, record=record, **settings)
            check_renderer(gen.record, gen.render_poses)
        except DanceError as e:
            raise DanceError(f"{path}: {e}") from None
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise DanceError(f"{path}: its config or record does not describe a {cls.kind} ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120]}); train it again") from None
        try:
            gen.load_state(state)
            if not (isinstance(state["history"], list) and all(isinstance(h, dict) for h in state["history"])
                    and isinstance(state["epoch"], int) and state["epoch"] >= 0):
                raise ValueError("a damaged epoch count or training history")
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as e:
            raise DanceError(f"{path}: its weights or history do not fit the model its config describes "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:120]}); train it again") from None
        return gen
