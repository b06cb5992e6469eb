"""Training losses for IQA: a pointwise term keeps scores on the MOS scale, correlation and ranking
terms optimise what IQA is judged by (PLCC/SROCC over a set of images, not per-image error)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


def plcc_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(1 - PLCC) / 2`` over the batch, in [0, 1]; scale- and offset-invariant in ``pred``."""
    p = pred - pred.mean()
    t = target - target.mean()
    corr = (p * t).sum() / (p.norm() * t.norm() + eps)
    return (1.0 - corr) / 2.0


def pairwise_rank_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hinge on every ordered pair: a pair must be ordered like its MOS, by a margin equal to the
    MOS difference (targets normalised to [0, 1], so the margin is on the same scale)."""
    dp = pred[:, None] - pred[None, :]
    dt = target[:, None] - target[None, :]
    mask = dt > 0  # each unordered pair once, ties carry no order
    if not mask.any():
        return pred.sum() * 0.0
    return torch.relu(dt[mask] - dp[mask]).mean()


@dataclass(frozen=True)
class IQALoss:
    """``l1 * L1 + mse * MSE + plcc * (1 - PLCC)/2 + rank * pairwise hinge`` on normalised MOS."""

    l1: float = 1.0
    mse: float = 0.0
    plcc: float = 1.0
    rank: float = 1.0

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """``groups`` (one dataset id per image): the PLCC and rank terms are computed within each
        group and averaged over the groups that have enough images, so labels of two studies are
        never compared; the pointwise terms use every image."""
        pred, target = pred.float().reshape(-1), target.float().reshape(-1)
        loss = pred.new_zeros(())
        if self.l1:
            loss = loss + self.l1 * (pred - target).abs().mean()
        if self.mse:
            loss = loss + self.mse * ((pred - target) ** 2).mean()
        members = [pred.new_ones(pred.shape, dtype=torch.bool)] if groups is None else \
            [groups.reshape(-1) == g for g in torch.unique(groups)]
        if self.plcc:
            terms = [plcc_loss(pred[m], target[m]) for m in members if int(m.sum()) > 2]
            if terms:
                loss = loss + self.plcc * torch.stack(terms).mean()
        if self.rank:
            terms = [pairwise_rank_loss(pred[m], target[m]) for m in members if int(m.sum()) > 1]
            if terms:
                loss = loss + self.rank * torch.stack(terms).mean()
        return loss

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
