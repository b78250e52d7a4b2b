"""The seed's direct generators (GEN_TYPE 2 and 3): a network maps a pose straight to an
image of the target, trained with an L1 loss against the target's frames.

Two inputs, two networks (nets.py):
  --input ske    GenNNSkeToImage: the 26-vector as a 26x1x1 tensor through five
                 ConvTranspose layers to a 3x64x64 image (the seed's design).
  --input image  a four-level UNet on the skeleton drawn as a 64x64 stick figure: its
                 skip connections carry the limbs' positions straight to the decoder.
Everything else (dataset, checkpoints, training loop, command line) is shared: learned_generator.py,
training.py, trainer_cli.py and the modules they use.

    python GenVanillaNN.py [VIDEO] --input ske|image --epochs N [--resume]
"""
from dataclasses import dataclass

from learned_generator import LearnedGenerator
from nets import GenNNSkeToImage, UNet
from optimisers import step
from trainer_cli import train_main
from training_settings import TrainingSettings, setting
from project import DanceError, cli_main

INPUTS = ("ske", "image")


@dataclass(frozen=True)
class VanillaSettings(TrainingSettings):
    """GenVanillaNN's settings: the shared ones (image_size 64, batch 32, lr 2e-4) and its input."""
    input: str = setting("ske", choices=INPUTS,
                         flag="the 26-vector (ske) or the drawn skeleton (image)")  # one class, two rows of the table


class GenVanillaNN(LearnedGenerator):
    """A pose -> image network trained with L1 (the seed's GenVanillaNN).

        gen = GenVanillaNN(input="ske")              # or input="image"
        gen.train(VideoSkeleton("data/taichi1.mp4"), epochs=10)
        gen.save("models/taichi1_vanilla_nn_ske.pth")
        image = GenVanillaNN.load("models/taichi1_vanilla_nn_ske.pth").generate(ske)
    """

    kind = "GenVanillaNN"
    settings = VanillaSettings

    def build(self):
        if self.config["input"] not in INPUTS:
            raise DanceError(f"--input must be one of {', '.join(INPUTS)} (got {self.config['input']!r})")
        self.netG = (GenNNSkeToImage() if self.config["input"] == "ske" else
                     UNet(in_channels=self.render_poses.channels, base=32, levels=4)).to(self.device)

    @property
    def net_inputs(self):
        return ("vector",) if self.config["input"] == "ske" else ("pose",)

    @classmethod
    def model_name(cls, config):
        return f"vanilla_nn_{config['input']}"  # one class, two rows of the table

    def train_step(self, batch):
        self.netG.train()
        fake = self.netG(batch)
        loss = (fake - batch["image"]).abs().mean()
        step(self.optG, loss)
        return {"l1": loss.item() / 2}  # halved: [0, 1] pixel units, like val_l1


def main():
    return train_main(GenVanillaNN)


if __name__ == "__main__":
    cli_main(main)
