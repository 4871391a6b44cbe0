"""Check every layer's forward pass and gradients on random configurations against two independent
references: central finite differences of the NumPy forward pass, and PyTorch autograd in float64.

Each check builds one layer with random shapes and hyper-parameters, draws a random upstream gradient
G, and back-propagates it: the analytic gradients are then those of the scalar L = sum(G * layer(x)).
Finite differences need only the forward pass, so they also catch a backward pass that is consistent
with PyTorch for the wrong reason (e.g. a test that only ever uses PyTorch as the oracle).

Errors are reported as the maximum absolute difference and that maximum divided by the largest
magnitude of the two arrays compared (a norm-wise relative error, which stays meaningful when single
elements are near zero). PyTorch is imported lazily: the layers themselves are NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnlab.reference.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from cnnlab.reference.batchnorm import BatchNorm2d
from cnnlab.reference.conv import Conv2d
from cnnlab.reference.layer import Layer
from cnnlab.reference.linear import Flatten, Linear
from cnnlab.reference.loss import SoftmaxCrossEntropy
from cnnlab.reference.pool import AvgPool2d, MaxPool2d

if TYPE_CHECKING:
    import torch

Arrays = dict[str, np.ndarray]
NumpyFn = Callable[[Arrays, "np.ndarray | None"], tuple[np.ndarray, Arrays]]

TORCH_ABS_TOLERANCE = 1e-10  # float64 vs float64: only summation order differs
FD_REL_TOLERANCE = 1e-6  # central differences with h = 1e-6 are good to ~1e-9 relative
FD_STEP = 1e-6


@dataclass
class Check:
    """One random layer configuration: its differentiable inputs and how to run it in each framework."""

    layer: str
    config: dict[str, Any]
    inputs: Arrays  # float64 arrays the output is differentiated with respect to
    numpy_fn: NumpyFn  # (inputs, G or None) -> (output, gradients of sum(G * output))
    torch_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor]

    def describe(self) -> str:
        return " ".join(f"{k}={_short(v)}" for k, v in self.config.items())


def _short(value: Any) -> str:
    if isinstance(value, tuple) and len(set(value)) == 1 and len(value) == 2:
        return str(value[0])
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _layer_fn(layer: Layer, inputs: Arrays) -> NumpyFn:
    """Run ``layer`` with its parameters taken from ``inputs`` (every key other than ``x``)."""
    params = {name: getattr(layer, name) for name in inputs if name != "x"}

    def run(values: Arrays, grad_out: np.ndarray | None) -> tuple[np.ndarray, Arrays]:
        for name, param in params.items():
            param.value = values[name]
        out = layer.forward(values["x"])
        if grad_out is None:
            return out, {}
        grads = {"x": layer.backward(grad_out)}
        grads.update({name: param.grad for name, param in params.items()})
        return out, grads

    return run


def _pick(rng: np.random.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high], inclusive."""
    return int(rng.integers(low, high + 1))


def _pair(rng: np.random.Generator, low: int, high: int) -> tuple[int, int]:
    """Mostly square, sometimes not: non-square kernels/strides catch swapped height/width."""
    first = _pick(rng, low, high)
    return (first, first) if rng.random() < 0.6 else (first, _pick(rng, low, high))


def _image(rng: np.random.Generator, n: int, c: int, min_size: tuple[int, int], extra: int = 5) -> np.ndarray:
    h, w = (_pick(rng, s, s + extra) for s in min_size)
    return rng.normal(size=(n, c, h, w))


def _conv_check(rng: np.random.Generator) -> Check:
    import torch.nn.functional as F

    n, c, f = _pick(rng, 1, 3), _pick(rng, 1, 3), _pick(rng, 1, 4)
    kernel, stride, dilation = _pair(rng, 1, 4), _pair(rng, 1, 3), _pair(rng, 1, 2)
    padding = _pair(rng, 0, 2)
    bias = bool(rng.random() < 0.8)
    extent = tuple(d * (k - 1) + 1 - 2 * p for k, d, p in zip(kernel, dilation, padding))
    x = _image(rng, n, c, tuple(max(e, 1) for e in extent))
    layer = Conv2d(c, f, kernel, stride, padding, dilation, bias, rng=rng, dtype=np.float64)
    inputs = {"x": x, "weight": layer.weight.value} | ({"bias": layer.bias.value} if layer.bias else {})
    config = dict(input=x.shape, out_channels=f, kernel=kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)
    return Check(
        "conv2d", config, inputs, _layer_fn(layer, inputs),
        lambda t: F.conv2d(t["x"], t["weight"], t.get("bias"), stride, padding, dilation),
    )


def _pool_check(rng: np.random.Generator, kind: str) -> Check:
    import torch.nn.functional as F

    if rng.random() < 0.3:  # the case the `=` instead of `+=` bug hides from 2x2/stride-2 tests
        kernel, stride = (3, 3), (1, 1)
    else:
        kernel, stride = _pair(rng, 1, 4), _pair(rng, 1, 3)
    padding = tuple(_pick(rng, 0, k // 2) for k in kernel)
    x = _image(rng, _pick(rng, 1, 3), _pick(rng, 1, 3), tuple(max(k - 2 * p, 1) for k, p in zip(kernel, padding)))
    config = dict(input=x.shape, kernel=kernel, stride=stride, padding=padding)
    if kind == "maxpool2d":
        layer: Layer = MaxPool2d(kernel, stride, padding)
        torch_fn = lambda t: F.max_pool2d(t["x"], kernel, stride, padding)  # noqa: E731
    else:
        layer = AvgPool2d(kernel, stride, padding)
        torch_fn = lambda t: F.avg_pool2d(t["x"], kernel, stride, padding)  # noqa: E731
    return Check(kind, config, {"x": x}, _layer_fn(layer, {"x": x}), torch_fn)


def _activation_check(rng: np.random.Generator, kind: str) -> Check:
    import torch
    import torch.nn.functional as F

    x = _image(rng, _pick(rng, 1, 3), _pick(rng, 1, 3), (2, 2), extra=4) * 2.0
    config: dict[str, Any] = dict(input=x.shape)
    if kind == "leaky_relu":
        slope = round(float(rng.uniform(0.01, 0.3)), 3)
        config["negative_slope"] = slope
        layer: Layer = LeakyReLU(slope)
        torch_fn = lambda t: F.leaky_relu(t["x"], slope)  # noqa: E731
    else:
        layer = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}[kind]()
        function = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[kind]
        torch_fn = lambda t: function(t["x"])  # noqa: E731
    return Check(kind, config, {"x": x}, _layer_fn(layer, {"x": x}), torch_fn)


def _linear_check(rng: np.random.Generator) -> Check:
    import torch.nn.functional as F

    n, fin, fout, bias = _pick(rng, 1, 4), _pick(rng, 1, 8), _pick(rng, 1, 6), bool(rng.random() < 0.8)
    layer = Linear(fin, fout, bias, rng=rng, dtype=np.float64)
    x = rng.normal(size=(n, fin))
    inputs = {"x": x, "weight": layer.weight.value} | ({"bias": layer.bias.value} if layer.bias else {})
    config = dict(input=x.shape, out_features=fout, bias=bias)
    return Check("linear", config, inputs, _layer_fn(layer, inputs), lambda t: F.linear(t["x"], t["weight"], t.get("bias")))


def _flatten_check(rng: np.random.Generator) -> Check:
    x = _image(rng, _pick(rng, 1, 3), _pick(rng, 1, 3), (1, 1), extra=3)
    return Check("flatten", dict(input=x.shape), {"x": x}, _layer_fn(Flatten(), {"x": x}), lambda t: t["x"].flatten(1))


def _batchnorm_check(rng: np.random.Generator) -> Check:
    import torch.nn.functional as F

    n, c = _pick(rng, 1, 3), _pick(rng, 1, 3)
    x = rng.normal(loc=rng.normal(), scale=rng.uniform(0.5, 2.0), size=(n, c, _pick(rng, 2, 5), _pick(rng, 2, 5)))
    layer = BatchNorm2d(c, dtype=np.float64)
    inputs = {"x": x, "weight": rng.normal(size=c), "bias": rng.normal(size=c)}

    def torch_fn(t: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.batch_norm(t["x"], None, None, t["weight"], t["bias"], training=True, eps=layer.eps)

    return Check("batchnorm2d", dict(input=x.shape, mode="train"), inputs, _layer_fn(layer, inputs), torch_fn)


def _cross_entropy_check(rng: np.random.Generator) -> Check:
    import torch
    import torch.nn.functional as F

    n, k = _pick(rng, 1, 6), _pick(rng, 2, 7)
    logits, labels = rng.normal(scale=3.0, size=(n, k)), rng.integers(0, k, size=n)
    loss = SoftmaxCrossEntropy()

    def run(values: Arrays, grad_out: np.ndarray | None) -> tuple[np.ndarray, Arrays]:
        out = np.array(loss.forward(values["x"], labels))
        return out, ({} if grad_out is None else {"x": loss.backward(float(grad_out))})

    return Check(
        "cross_entropy", dict(logits=logits.shape), {"x": logits}, run,
        lambda t: F.cross_entropy(t["x"], torch.from_numpy(labels)),
    )


# Round-robin order of layer kinds: convolution and pooling, the subtle ones, come up most often.
SCHEDULE: tuple[str, ...] = (
    "conv2d", "maxpool2d", "avgpool2d", "conv2d", "linear", "relu", "conv2d", "maxpool2d", "avgpool2d",
    "batchnorm2d", "conv2d", "leaky_relu", "sigmoid", "tanh", "cross_entropy", "flatten",
)

_BUILDERS: dict[str, Callable[[np.random.Generator], Check]] = {
    "conv2d": _conv_check,
    "maxpool2d": lambda rng: _pool_check(rng, "maxpool2d"),
    "avgpool2d": lambda rng: _pool_check(rng, "avgpool2d"),
    "relu": lambda rng: _activation_check(rng, "relu"),
    "leaky_relu": lambda rng: _activation_check(rng, "leaky_relu"),
    "sigmoid": lambda rng: _activation_check(rng, "sigmoid"),
    "tanh": lambda rng: _activation_check(rng, "tanh"),
    "linear": _linear_check,
    "flatten": _flatten_check,
    "batchnorm2d": _batchnorm_check,
    "cross_entropy": _cross_entropy_check,
}


def random_check(seed: int, index: int) -> Check:
    """The ``index``-th configuration for ``seed``; each one is reproducible on its own."""
    return _BUILDERS[SCHEDULE[index % len(SCHEDULE)]](np.random.default_rng([seed, index]))


def torch_reference(check: Check, grad_out: np.ndarray) -> tuple[np.ndarray, Arrays]:
    """Output and gradients of sum(G * output) from PyTorch autograd in float64."""
    import torch

    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in check.inputs.items()}
    out = check.torch_fn(tensors)
    (out * torch.from_numpy(grad_out)).sum().backward()
    return out.detach().numpy(), {k: t.grad.numpy() for k, t in tensors.items()}


def finite_differences(
    check: Check, grad_out: np.ndarray, rng: np.random.Generator, max_coordinates: int, step: float = FD_STEP
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Central differences of sum(G * output) at up to ``max_coordinates`` random entries per input.

    Returns ``{name: (flat indices, estimates)}``. The difference is taken on the outputs before the
    dot product with G, which avoids cancelling two large, nearly equal sums.
    """
    values = {k: v.copy() for k, v in check.inputs.items()}
    estimates = {}
    for name, array in values.items():
        flat = array.reshape(-1)
        picked = np.sort(rng.choice(flat.size, size=min(flat.size, max_coordinates), replace=False))
        derivs = np.empty(picked.size)
        for k, index in enumerate(picked):
            original = flat[index]
            flat[index] = original + step
            plus = check.numpy_fn(values, None)[0].copy()  # copies: an output may be a view of x
            flat[index] = original - step
            minus = check.numpy_fn(values, None)[0].copy()
            flat[index] = original
            derivs[k] = np.sum((plus - minus) * grad_out) / (2 * step)
        estimates[name] = (picked, derivs)
    return estimates


def compare(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max absolute error, that error over the largest magnitude in either array; 0/0 = 0)."""
    if actual.shape != expected.shape:
        raise AssertionError(f"shape mismatch: {actual.shape} vs {expected.shape}")
    abs_err = float(np.max(np.abs(actual - expected), initial=0.0))
    scale = max(float(np.max(np.abs(actual), initial=0.0)), float(np.max(np.abs(expected), initial=0.0)))
    return abs_err, (abs_err / scale if scale > 0 else 0.0)


@dataclass
class ErrorRow:
    """Errors of one tensor (the output, or one gradient) of one check; None where not measured."""

    tensor: str
    torch_abs: float
    torch_rel: float
    fd_abs: float | None = None
    fd_rel: float | None = None

    def passed(self) -> bool:
        return self.torch_abs <= TORCH_ABS_TOLERANCE and (self.fd_rel is None or self.fd_rel <= FD_REL_TOLERANCE)


@dataclass
class CheckResult:
    index: int
    layer: str
    config: str
    rows: list[ErrorRow] = field(default_factory=list)

    def passed(self) -> bool:
        return all(row.passed() for row in self.rows)


def run_check(check: Check, index: int, seed: int, fd_coordinates: int) -> CheckResult:
    """Compare the NumPy output and gradients with PyTorch and (if fd_coordinates > 0) finite differences."""
    rng = np.random.default_rng([seed, index, 1])
    out, _ = check.numpy_fn(check.inputs, None)
    grad_out = rng.normal(size=np.shape(out))
    out, grads = check.numpy_fn({k: v.copy() for k, v in check.inputs.items()}, grad_out)
    torch_out, torch_grads = torch_reference(check, grad_out)
    fd = finite_differences(check, grad_out, rng, fd_coordinates) if fd_coordinates > 0 else {}
    result = CheckResult(index, check.layer, check.describe())
    result.rows.append(ErrorRow("output", *compare(np.asarray(out), torch_out)))
    for name in check.inputs:
        row = ErrorRow(f"d{name}", *compare(grads[name], torch_grads[name]))
        if name in fd:
            picked, estimates = fd[name]
            row.fd_abs, row.fd_rel = compare(grads[name].reshape(-1)[picked], estimates)
        result.rows.append(row)
    return result


def run_gradcheck(configs: int, seed: int = 0, fd_coordinates: int = 64) -> list[CheckResult]:
    return [run_check(random_check(seed, i), i, seed, fd_coordinates) for i in range(configs)]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def format_table(results: list[CheckResult]) -> str:
    """One line per (configuration, tensor): errors against PyTorch float64 and finite differences."""
    header = ("#", "layer", "tensor", "abs err torch", "rel err torch", "abs err fd", "rel err fd", "config")
    lines = []
    for result in results:
        for k, row in enumerate(result.rows):
            lines.append((
                str(result.index) if k == 0 else "", result.layer if k == 0 else "", row.tensor,
                _fmt(row.torch_abs), _fmt(row.torch_rel), _fmt(row.fd_abs), _fmt(row.fd_rel),
                result.config if k == 0 else "",
            ))
    return _align([header, *lines])


def format_summary(results: list[CheckResult]) -> str:
    """Worst errors per (layer, tensor) over all configurations, with pass/fail against the tolerances."""
    worst: dict[str, dict[str, list[Any]]] = {}  # layer -> tensor -> [count, 4 worst errors, ok]
    for result in results:
        for row in result.rows:
            entry = worst.setdefault(result.layer, {}).setdefault(row.tensor, [0, 0.0, 0.0, None, None, True])
            entry[0] += 1
            for k, value in enumerate((row.torch_abs, row.torch_rel, row.fd_abs, row.fd_rel), start=1):
                if value is not None:
                    entry[k] = max(entry[k] or 0.0, value)
            entry[5] = entry[5] and row.passed()
    header = ("layer", "tensor", "configs", "max abs torch", "max rel torch", "max abs fd", "max rel fd", "ok")
    lines = [
        (layer, tensor, str(n), _fmt(ta), _fmt(tr), _fmt(fa), _fmt(fr), "yes" if ok else "NO")
        for layer, tensors in worst.items()
        for tensor, (n, ta, tr, fa, fr, ok) in sorted(tensors.items(), key=lambda item: _tensor_rank(item[0]))
    ]
    return _align([header, *lines])


def _tensor_rank(tensor: str) -> int:
    order = ("output", "dx", "dweight", "dbias")
    return order.index(tensor) if tensor in order else len(order)


def _align(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)
