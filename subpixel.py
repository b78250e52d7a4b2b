"""Transposed convolutions rewritten as sub-pixel convolutions, for an inference runtime.

A ConvTranspose2d with a 4x4 kernel, stride 2 and padding 1 (the U-Net's upsampling layer,
nets.up) is the same function as a 3x3 convolution (stride 1, padding 1) with four times the
output channels followed by a depth-to-space of 2 (PixelShuffle): each of the four output
phases (even or odd row, even or odd column) reads a 2x2 neighbourhood of the input through
four of the sixteen kernel taps (Shi et al., "Is the deconvolution layer the same as a
convolutional layer?", arXiv:1609.07009, 2016; the sub-pixel layer of Shi et al., CVPR 2016).
Per output phase a (rows; columns alike), the input offset and the kernel tap it reads:
    a = 0 (output row 2i):      input row i - 1 through tap 3, row i through tap 1
    a = 1 (output row 2i + 1):  input row i through tap 2, row i + 1 through tap 0
The 3x3 kernel holds the unused offset as zeros: 2.25x the multiplications, but a plain
convolution, which OpenVINO 2025.3 runs in bfloat16 on AMX where it runs a transposed one in
float32 only. Measured on the layered generator's fusion U-Net, one thread, this project's
2-core CPU (2026-12-06): 4.97 ms with its transposed convolutions, 2.83 ms rewritten; in
float32 the rewrite is slower (10.6 ms against 6.1), so runtime.py uses it in bfloat16 only.
In float32 the two agree within 2e-6 (sums in another order; tested to 1e-5).
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

SCALE = 2          # the layer's stride: the depth-to-space factor
# Output phase -> {input offset: the transposed kernel's tap that reads it} (module docstring).
TAPS = {0: {-1: 3, 0: 1}, 1: {0: 2, 1: 0}}


class SubPixelConv(nn.Module):
    """The function of `deconv` (a ConvTranspose2d, kernel 4, stride 2, padding 1, no groups or
    dilation): (N, C_in, H, W) -> (N, C_out, 2H, 2W), as a 3x3 convolution to 4 C_out channels
    and a depth-to-space. Its weights are derived once from `deconv`'s (a copy: later changes to
    `deconv` are not followed)."""

    def __init__(self, deconv):
        super().__init__()
        w = deconv.weight.detach()                                           # (C_in, C_out, 4, 4)
        cin, cout = w.shape[:2]
        kernel = torch.zeros(cout, SCALE, SCALE, cin, 3, 3, dtype=w.dtype)
        for a, rows in TAPS.items():
            for b, cols in TAPS.items():
                for dy, ky in rows.items():
                    for dx, kx in cols.items():
                        kernel[:, a, b, :, dy + 1, dx + 1] = w[:, :, ky, kx].T
        # Channel o * 4 + a * 2 + b becomes output pixel (2i + a, 2j + b) of channel o: PixelShuffle's order.
        self.conv = nn.Conv2d(cin, SCALE * SCALE * cout, 3, 1, 1, bias=deconv.bias is not None)
        self.conv.weight.data.copy_(kernel.reshape(SCALE * SCALE * cout, cin, 3, 3))
        if deconv.bias is not None:
            self.conv.bias.data.copy_(deconv.bias.detach().repeat_interleave(SCALE * SCALE))

    def forward(self, x):
        return F.pixel_shuffle(self.conv(x), SCALE)


def rewritable(module):
    """Whether `module` is a transposed convolution SubPixelConv computes."""
    return isinstance(module, nn.ConvTranspose2d) and module.kernel_size == (4, 4) and module.stride == (2, 2) \
        and module.padding == (1, 1) and module.output_padding == (0, 0) and module.dilation == (1, 1) \
        and module.groups == 1


def as_subpixel(net):
    """A copy of `net` with every `rewritable` transposed convolution replaced by its
    SubPixelConv (`net` itself untouched): the same function, for export to a runtime."""
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if rewritable(child):
                setattr(parent, name, SubPixelConv(child))
    return net
