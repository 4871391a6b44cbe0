"""Every reference layer against PyTorch float64 autograd over hundreds of random configurations, and
against central finite differences on small ones; plus the ``cnnlab gradcheck`` command."""

from __future__ import annotations


import pytest

from cnnlab.errors import UserError
from reference_cli import run_cli
from cnnlab.reference.gradcheck import (
    SCHEDULE,
    TORCH_ABS_TOLERANCE,
    format_summary,
    random_check,
    run_check,
    run_gradcheck,
)

N_TORCH_CONFIGS = 256


@pytest.fixture(scope="module")
def torch_results():
    return run_gradcheck(N_TORCH_CONFIGS, seed=7, fd_coordinates=0)


def test_all_outputs_and_gradients_match_pytorch_float64(torch_results) -> None:
    worst = max((row.torch_abs, r.index, r.layer, row.tensor) for r in torch_results for row in r.rows)
    assert worst[0] <= TORCH_ABS_TOLERANCE, f"config {worst[1]} ({worst[2]}, {worst[3]}): {worst[0]:.2e}"
    gradients = {(r.layer, row.tensor) for r in torch_results for row in r.rows}
    assert {("conv2d", "dweight"), ("conv2d", "dbias"), ("batchnorm2d", "dweight")} <= gradients
    assert {r.layer for r in torch_results} == set(SCHEDULE)


def test_random_configurations_cover_the_hard_cases() -> None:
    """The 1e-10 claim is only worth something if the configurations include the cases that break
    course code: strides 2-3, padding, dilation 2, overlapping 3x3/stride-1 pools, batches > 1."""
    configs = [(c.layer, c.config) for c in (random_check(7, i) for i in range(N_TORCH_CONFIGS))]
    conv = [cfg for layer, cfg in configs if layer == "conv2d"]
    assert {2, 3} <= {s for cfg in conv for s in cfg["stride"]}
    assert any(max(cfg["padding"]) > 0 for cfg in conv)
    assert any(2 in cfg["dilation"] for cfg in conv)
    assert any(cfg["dilation"] == (2, 2) and max(cfg["stride"]) > 1 and max(cfg["padding"]) > 0 for cfg in conv)
    for pool in ("maxpool2d", "avgpool2d"):
        pools = [cfg for layer, cfg in configs if layer == pool]
        assert any(cfg["kernel"] == (3, 3) and cfg["stride"] == (1, 1) for cfg in pools)
        assert any(max(cfg["padding"]) > 0 for cfg in pools)
    assert sum(cfg["input"][0] > 1 for layer, cfg in configs if "input" in cfg) > N_TORCH_CONFIGS // 3
    assert len(conv) >= N_TORCH_CONFIGS // 5


def test_finite_differences_agree_on_small_cases() -> None:
    results = [run_check(random_check(3, i), i, 3, fd_coordinates=24) for i in range(2 * len(SCHEDULE))]
    for result in results:
        assert result.passed(), f"config {result.index} ({result.layer} {result.config})"
        assert all(row.fd_rel is not None for row in result.rows if row.tensor != "output")
    assert "conv2d" in format_summary(results)


def test_a_wrong_gradient_is_caught() -> None:
    """The checker itself must fail when a backward pass is wrong (here: dx scaled by 1.01)."""
    check = random_check(0, 0)
    numpy_fn = check.numpy_fn

    def broken(values, grad_out):
        out, grads = numpy_fn(values, grad_out)
        return out, {k: (v * 1.01 if k == "x" else v) for k, v in grads.items()}

    check.numpy_fn = broken
    result = run_check(check, 0, 0, fd_coordinates=8)
    dx = next(row for row in result.rows if row.tensor == "dx")
    assert not result.passed() and dx.torch_abs > 1e-4 and dx.fd_rel > 1e-4


def test_gradcheck_command_prints_a_table(capsys) -> None:
    assert run_cli(["gradcheck", "--configs", "16", "--seed", "1", "--fd-coords", "8"]) == 0
    out = capsys.readouterr().out
    assert "abs err torch" in out and "rel err fd" in out and "all 16 configurations within tolerance" in out
    for layer in ("conv2d", "maxpool2d", "avgpool2d", "batchnorm2d", "cross_entropy"):
        assert layer in out


def test_gradcheck_command_rejects_bad_counts() -> None:
    with pytest.raises(UserError, match="--configs"):
        run_cli(["gradcheck", "--configs", "0"])
    with pytest.raises(UserError, match="--fd-coords"):
        run_cli(["gradcheck", "--fd-coords", "-1"])
