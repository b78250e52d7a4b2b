"""The optimiser every network here trains with, made at its first use, and one gradient step of it."""
import torch

ADAM_BETAS = (0.5, 0.999)  # DCGAN's and pix2pix's: a short memory of the gradient suits adversarial games


def adam(parameters, lr):
    """The optimiser of every network here: Adam with ADAM_BETAS."""
    return torch.optim.Adam(parameters, lr=lr, betas=ADAM_BETAS)


class AdamOf:
    """A generator's optimiser for its network in attribute `net`, as a class attribute
    (`optG = AdamOf("netG")`): `adam` on that network's parameters with the config's "lr",
    made at its first use (a training step, a checkpoint's state) and kept. Inference never
    steps, and the first torch.optim.Adam a process makes imports some 850 modules
    (torch._dynamo, sympy: about 1 s), which every demo, live start and web page paid.
    Made after `distribute` it holds the same parameters (DistributedDataParallel wraps the
    network's own). Assigning the attribute (`self.optG = adam(...)`) replaces it."""

    def __init__(self, net):
        self.net = net

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, gen, owner=None):
        if gen is None:
            return self
        optimiser = gen.__dict__[self.name] = adam(getattr(gen, self.net).parameters(), gen.config["lr"])
        return optimiser   # an instance attribute from now on: this is not called again


def step(optimiser, loss, inputs=None):
    """One gradient step of `optimiser` on `loss`; `inputs`: the only tensors that get
    gradients (a generator's parameters, when its loss runs through a critic)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward(inputs=inputs)
    optimiser.step()
