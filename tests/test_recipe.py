"""The README's "Adding a generator" recipe, followed literally for a toy generator in a copy
of the project: a module beside the others, one row in the table, its trained model in
models/, its tests in tests/. Nothing else is touched, and the trainer, the demo, --help and
the structure tests take it in."""
import os
import re
import shutil
import subprocess
import sys

from conftest import ROOT

# Step 1: a new module beside the others, one class with kind, name, settings and net_inputs,
# build() and train_step(batch), and a main() that calls trainer_cli.train_main.
TOY_MODULE = '''"""A toy generator: two convolutions from the stick figure to the image, trained with L1."""
from dataclasses import dataclass

import torch.nn as nn

from learned_generator import LearnedGenerator
from optimisers import step
from project import cli_main
from trainer_cli import train_main
from training_settings import TrainingSettings, setting


@dataclass(frozen=True)
class ToySettings(TrainingSettings):
    """The shared settings and the toy's width."""
    width: int = setting(8, 1, 64, flag="channels between its two convolutions (default: {default})")  # its capacity


class GenToy(LearnedGenerator):
    """The drawn pose -> two 3x3 convolutions -> the image."""

    kind = "GenToy"
    name = "toy"
    settings = ToySettings
    net_inputs = ("pose",)

    def build(self):
        width = self.config["width"]
        self.netG = _Toy(self.render_poses.channels, width).to(self.device)   # optG: made when training asks

    def train_step(self, batch):
        self.netG.train()
        loss = (self.netG(batch) - batch["image"]).abs().mean()
        step(self.optG, loss)
        return {"l1": loss.item() / 2}


class _Toy(nn.Module):
    def __init__(self, pose_channels, width):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(pose_channels, width, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(width, 3, 3, padding=1), nn.Tanh())

    def forward(self, batch):
        return self.layers(batch["pose"])


def main():
    return train_main(GenToy)


if __name__ == "__main__":
    cli_main(main)
'''

# Step 3's tests: the toy's own, in tests/.
TOY_TEST = '''import torch

from GenToy import GenToy
from generators import find


def test_the_toy_is_type_8_and_makes_images():
    assert find(8).cls is GenToy and find("toy").number == 8
    gen = GenToy(device="cpu", width=4)
    assert gen.config["width"] == 4
    assert gen.inference_net({"pose": torch.zeros(1, 3, 64, 64)}).shape == (1, 3, 64, 64)
'''


def copy_of_the_project(dest):
    """The project's files as git sees them (no caches, no outputs), the shipped models linked."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        source, target = ROOT / name, dest / name
        if not source.exists():  # deleted in the working tree, not yet committed
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.startswith("models/"):
            target.symlink_to(source)
        else:
            shutil.copy2(source, target)
    return dest


def test_the_readme_recipe_adds_a_generator_touching_only_the_files_it_names(clip, tmp_path):
    readme = (ROOT / "README.md").read_text()
    recipe = readme[readme.index("## Adding a generator"):]
    for named in ("LearnedGenerator", "`kind`", "`name`", "`settings`", "`net_inputs`", "build()", "train_step(batch)",
                  "trainer_cli.train_main", "generators.py", "`TABLE`", "models/", "tests/"):
        assert named in recipe, f"the recipe no longer names {named}"
    project = copy_of_the_project(tmp_path / "project")
    before = {p.relative_to(project): p.read_bytes() for p in project.rglob("*") if p.is_file() and not p.is_symlink()}
    (project / "GenToy.py").write_text(TOY_MODULE)                            # step 1
    table = (project / "generators.py").read_text()                           # step 2: one row (and its import)
    table = table.replace("from GenVanillaNN import GenVanillaNN\n",
                          "from GenToy import GenToy\nfrom GenVanillaNN import GenVanillaNN\n")
    row = '    Row(8, GenToy, "two convolutions from the stick figure, 64x64"),\n'
    table = re.sub(r"\n\)\n", f"\n{row})\n", table, count=1)
    (project / "generators.py").write_text(table)
    (project / "tests" / "test_toy.py").write_text(TOY_TEST)                  # step 3: its tests
    env = {**os.environ, "DANCE_CACHE": str(tmp_path / "cache"), "DANCE_CHECKPOINTS": str(tmp_path / "ckpt")}

    def in_copy(*args):
        return subprocess.run([sys.executable, *map(str, args)], cwd=project, env=env, capture_output=True, text=True,
                              timeout=600)

    helped = in_copy("GenToy.py", "--help")
    assert helped.returncode == 0 and "--width" in helped.stdout  # the flag, derived from its settings
    trained = in_copy("GenToy.py", clip, "--epochs", 1, "--every", 4, "--width", 4)  # step 3: its model in models/
    assert trained.returncode == 0, trained.stderr
    model = project / "models" / "clip_toy.pth"
    assert model.is_file() and not model.is_symlink()
    listed = in_copy("DanceDemo.py", "--help")
    assert listed.returncode == 0 and "toy" in listed.stdout
    demo = in_copy("DanceDemo.py", "--source", clip, "--target", clip, "--gen-type", 8, "--every", 6,
                   "--output", tmp_path / "toy.mp4")
    assert demo.returncode == 0 and (tmp_path / "toy.mp4").stat().st_size > 0, demo.stderr
    # (the structure test that loads every row's model of taichi1 is left out: a toy model of
    # taichi1 would need its 12,000 frames' skeletons; the toy's model here is of the clip)
    tests = in_copy("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_toy.py", "tests/test_structure.py",
                    "-k", "not ships_a_usable_model")
    assert tests.returncode == 0, tests.stdout[-3000:]
    after = {p.relative_to(project) for p in project.rglob("*") if p.is_file() and not p.is_symlink()
             and "__pycache__" not in p.parts and p.relative_to(project).parts[0] != "output"}  # sample grids
    touched = {p for p in after if p not in before or (project / p).read_bytes() != before[p]}
    # only what the recipe names: the module, the table, its model, its tests (the docs are step 4, by hand)
    assert touched == {p.relative_to(project) for p in (project / "GenToy.py", project / "generators.py", model,
                                                        project / "tests" / "test_toy.py")}, touched
