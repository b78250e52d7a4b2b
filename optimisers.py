"""The optimiser every network here trains with, and one gradient step of it."""
import torch

ADAM_BETAS = (0.5, 0.999)  # DCGAN's and pix2pix's: a short memory of the gradient suits adversarial games


def adam(parameters, lr):
    """The optimiser of every network here: Adam with ADAM_BETAS."""
    return torch.optim.Adam(parameters, lr=lr, betas=ADAM_BETAS)


def step(optimiser, loss, inputs=None):
    """One gradient step of `optimiser` on `loss`; `inputs`: the only tensors that get
    gradients (a generator's parameters, when its loss runs through a critic)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward(inputs=inputs)
    optimiser.step()
