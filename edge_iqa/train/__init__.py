"""Training on MOS-labelled data: losses, the stem-cache recipe, the loop and ``edge-iqa train``."""

from edge_iqa.train.losses import IQALoss, pairwise_rank_loss, plcc_loss

__all__ = ["IQALoss", "pairwise_rank_loss", "plcc_loss"]
