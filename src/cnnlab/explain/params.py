"""How a class-model image is represented while it is optimised (Lucent's "parameterisations").

Each parameterisation is a module whose parameters are what the optimiser changes and whose
``forward()`` returns the current images in [0, 1], N x 3 x H x W.

``PixelImage`` is the classic choice: the pixels themselves. Gradient ascent on pixels finds
high-frequency patterns the network reacts to, so the result looks like coloured noise.
``FourierImage`` (Olah et al., "Feature Visualization", 2017) stores the image as a spectrum whose
coefficients are scaled by 1/frequency, in a decorrelated colour space, then squashed by a sigmoid:
a step of the same size changes low frequencies as much as high ones relative to natural images, and
colours move together the way they do in photographs, so the optimiser finds smoother images.
"""

from __future__ import annotations

import torch
from torch import nn

# Square root of the colour covariance of ImageNet photos (from Lucid/Lucent), columns normalised so
# the largest has norm 1: decorrelated coordinates -> RGB.
_COLOUR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_MIX = _COLOUR_SQRT / _COLOUR_SQRT.norm(dim=0).max()
_SPECTRUM_GAIN = 4.0  # Lucid's constant: the spectrum is divided by it, which avoids saturated colours at start


class PixelImage(nn.Module):
    """Pixels in [0, 1], kept there by ``project()`` after each optimiser step."""

    def __init__(self, init: torch.Tensor) -> None:
        super().__init__()
        self.pixels = nn.Parameter(init.detach().clone().clamp(0, 1))

    @classmethod
    def noise(cls, n: int, size: int, generator: torch.Generator, spread: float = 0.1) -> PixelImage:
        """Grey images with Gaussian noise of std ``spread``: the usual starting point."""
        return cls(0.5 + spread * torch.randn(n, 3, size, size, generator=generator))

    def forward(self) -> torch.Tensor:
        return self.pixels

    def project(self) -> None:
        with torch.no_grad():
            self.pixels.clamp_(0, 1)


class FourierImage(nn.Module):
    """image = sigmoid(colour_mix(irfft2(spectrum * 1/f) / gain)); the spectrum is the parameter."""

    def __init__(self, spectrum: torch.Tensor, size: int) -> None:
        super().__init__()
        self.size = size
        self.spectrum = nn.Parameter(spectrum.detach().clone())  # N x 3 x size x (size//2+1) x 2 (re, im)
        self.register_buffer("scale", 1.0 / frequencies(size).clamp_min(1.0 / size), persistent=False)

    @classmethod
    def noise(cls, n: int, size: int, generator: torch.Generator, spread: float = 0.01) -> FourierImage:
        """Small random spectrum: an almost uniform grey image with faint smooth variations."""
        return cls(spread * torch.randn(n, 3, size, size // 2 + 1, 2, generator=generator), size)

    @classmethod
    def from_image(cls, images: torch.Tensor) -> FourierImage:
        """The parameters that reproduce ``images`` (N x 3 x H x H in [0, 1], clipped into the sigmoid's
        open range) exactly: every step of the forward map is inverted."""
        size = images.shape[-1]
        x = torch.logit(images.detach().float().clamp(1e-3, 1 - 1e-3))
        decorrelated = torch.einsum("ij,njhw->nihw", torch.linalg.inv(COLOUR_MIX), x) * _SPECTRUM_GAIN
        spectrum = torch.fft.rfft2(decorrelated, norm="ortho")
        scale = 1.0 / frequencies(size).clamp_min(1.0 / size)
        return cls(torch.view_as_real(spectrum / scale), size)

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum * self.scale[..., None])
        decorrelated = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / _SPECTRUM_GAIN
        rgb = torch.einsum("ij,njhw->nihw", COLOUR_MIX.to(decorrelated), decorrelated)
        return torch.sigmoid(rgb)

    def project(self) -> None:
        """Nothing to do: the sigmoid keeps every image valid."""


def frequencies(size: int) -> torch.Tensor:
    """Radial frequency (cycles per pixel) of each coefficient of a real 2-D FFT of a size x size image."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    return torch.sqrt(fx * fx + fy * fy)
