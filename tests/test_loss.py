"""berHu, L1, L2 against hand-computed values; masking of missing depth; the c = 0 edge."""

import pytest
import torch

from pipeline.model.loss import LOSSES, berhu, get_loss, l1, l2

# Valid residuals pred - target = [0.5, -1, 2, -5]; two more pixels have target <= 0 (missing).
PRED = [[[[1.5, 0.0, 100.0], [3.0, -4.0, 7.0]]]]
TARGET = [[[[1.0, 1.0, 0.0], [1.0, 1.0, -1.0]]]]


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(PRED, requires_grad=True), torch.tensor(TARGET)


def test_berhu_hand_computed():
    # c = 0.2 * 5 = 1. |0.5| -> 0.5; |-1| = c -> 1; 2 -> (4 + 1) / 2 = 2.5; -5 -> (25 + 1) / 2 = 13.
    pred, target = _inputs()
    loss = berhu(pred, target)
    assert loss.item() == pytest.approx(17 / 4)
    loss.backward()
    # d/dx: sign(x) / 4 on the |x| branch, x / c / 4 on the quadratic one; c is detached.
    expected = [[[[0.25, -0.25, 0.0], [0.5, -1.25, 0.0]]]]
    assert torch.allclose(pred.grad, torch.tensor(expected))


def test_berhu_both_quadratic():
    # residuals 0.1, 0.3: c = 0.06; (0.01 + 0.0036) / 0.12 = 0.113333, (0.09 + 0.0036) / 0.12 = 0.78
    loss = berhu(torch.tensor([1.1, 2.3]), torch.tensor([1.0, 2.0]))
    assert loss.item() == pytest.approx(0.446667, abs=1e-5)


def test_berhu_c_zero_is_finite():
    pred = torch.tensor([[2.0, 3.0], [4.0, 5.0]], requires_grad=True)
    loss = berhu(pred, pred.detach().clone())
    loss.backward()
    assert loss.item() == 0.0
    assert pred.grad.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_l1_l2_hand_computed():
    pred, target = _inputs()
    assert l1(pred, target).item() == pytest.approx((0.5 + 1 + 2 + 5) / 4)
    assert l2(pred, target).item() == pytest.approx((0.25 + 1 + 4 + 25) / 4)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_missing_depth_is_masked(name: str):
    pred, target = _inputs()
    loss = get_loss(name)(pred, target)
    loss.backward()
    moved = pred.detach().clone()
    moved[0, 0, 0, 2] = -50.0
    moved[0, 0, 1, 2] = 1e6
    assert get_loss(name)(moved, target).item() == loss.item()
    assert pred.grad[0, 0, 0, 2] == 0 and pred.grad[0, 0, 1, 2] == 0


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_no_valid_pixel_gives_nan_which_stops_training(name: str) -> None:
    assert get_loss(name)(torch.ones(2, 2), torch.zeros(2, 2)).isnan()


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        l1(torch.ones(2, 2), torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="huber"):
        get_loss("huber")
