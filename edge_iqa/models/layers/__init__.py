"""Layers shared across the model zoo."""

from edge_iqa.models.layers.attention import (
    ATTENTION_FORMS,
    AttentionForm,
    MultiHeadAttention,
    attention_form,
    current_attention_form,
    scaled_dot_product,
)

__all__ = [
    "ATTENTION_FORMS",
    "AttentionForm",
    "MultiHeadAttention",
    "attention_form",
    "current_attention_form",
    "scaled_dot_product",
]
