"""Naive and fast up-sampling agree exactly; the fast form puts each sub-kernel where it belongs."""

import pytest
import torch

from pipeline.model.upsampling import UnpoolConv, UpConv, UpProj, interleave, unpool

SIZES = [(5, 7), (4, 6), (1, 1), (6, 3)]  # odd, even, a single pixel, mixed


def _pair(cls: type[torch.nn.Module], in_ch: int, out_ch: int, **kwargs):
    torch.manual_seed(0)
    fast = cls(in_ch, out_ch, fast=True, **kwargs)
    naive = cls(in_ch, out_ch, fast=False, **kwargs)
    naive.load_state_dict(fast.state_dict())
    return naive, fast


def test_unpool_places_values_top_left():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]
    assert unpool(x).tolist() == [[expected]]


X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
# out[y, x] = sum_uv k[u, v] * unpool(X)[y + u - 2, x + v - 2]; with a one-hot k the output is
# the unpooled map shifted. Expected maps written out by hand.
ONE_HOT_CASES = {
    (2, 2): [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]],
    (2, 3): [[0, 2, 0, 0], [0, 0, 0, 0], [0, 4, 0, 0], [0, 0, 0, 0]],
    (1, 1): [[0, 0, 0, 0], [0, 1, 0, 2], [0, 0, 0, 0], [0, 3, 0, 4]],
    (3, 2): [[0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    (0, 4): [[0, 0, 0, 0], [0, 0, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0]],
}


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("tap", list(ONE_HOT_CASES))
def test_one_hot_kernel_by_hand(tap: tuple[int, int], fast: bool):
    block = UnpoolConv(1, 1, fast=fast)
    k = torch.zeros(1, 1, 5, 5)
    k[0, 0, tap[0], tap[1]] = 1.0
    with torch.no_grad():
        for name, (r, c) in {"k33": (0, 0), "k32": (0, 1), "k23": (1, 0), "k22": (1, 1)}.items():
            getattr(block, name).copy_(k[:, :, r::2, c::2])
    assert block(X).tolist() == [[ONE_HOT_CASES[tap]]]


def test_kernel5x5_assembles_subgrids():
    block = UnpoolConv(3, 2)
    k = block.kernel5x5()
    assert torch.equal(k[:, :, 0::2, 0::2], block.k33)
    assert torch.equal(k[:, :, 0::2, 1::2], block.k32)
    assert torch.equal(k[:, :, 1::2, 0::2], block.k23)
    assert torch.equal(k[:, :, 1::2, 1::2], block.k22)


def test_shared_state_dict_names_and_shapes():
    naive, fast = _pair(UpProj, 8, 4)
    shapes = {k: v.shape for k, v in fast.state_dict().items()}
    assert shapes == {k: v.shape for k, v in naive.state_dict().items()}
    assert shapes["conv1.k32"] == (4, 8, 3, 2)
    assert shapes["conv1.k23"] == (4, 8, 2, 3)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    ("cls", "kwargs"), [(UnpoolConv, {"bias": True}), (UpConv, {}), (UpProj, {})]
)
def test_naive_equals_fast(cls: type[torch.nn.Module], kwargs: dict, size: tuple[int, int]):
    naive, fast = _pair(cls, 6, 4, **kwargs)
    torch.manual_seed(1)
    x = torch.randn(2, 6, *size)
    for mode in ("train", "eval"):
        getattr(naive, mode)()
        getattr(fast, mode)()
        y_naive, y_fast = naive(x), fast(x)
        assert y_fast.shape == (2, 4, 2 * size[0], 2 * size[1])
        assert (y_naive - y_fast).abs().max() < 1e-4


def test_naive_equals_fast_gradients():
    naive, fast = _pair(UpProj, 6, 4)
    torch.manual_seed(2)
    x = torch.randn(2, 6, 5, 7)
    naive(x).square().sum().backward()
    fast(x).square().sum().backward()
    for (name, p_naive), p_fast in zip(naive.named_parameters(), fast.parameters(), strict=True):
        assert (p_naive.grad - p_fast.grad).abs().max() < 1e-4, name


def test_misplaced_subpixels_are_caught():
    """The equality check is sensitive to the interleave order (a known port bug swaps parts)."""
    naive, fast = _pair(UnpoolConv, 3, 2)
    x = torch.randn(1, 3, 5, 7)
    y = fast(x)
    y00, y01, y10, y11 = (y[:, :, a::2, b::2] for a in (0, 1) for b in (0, 1))
    assert torch.allclose(interleave(y00, y01, y10, y11), naive(x), atol=1e-5)
    assert not torch.allclose(interleave(y00, y10, y01, y11), naive(x), atol=1e-2)
