"""Reverse-mode automatic differentiation: the graph walk, grad mode and gradcheck."""

from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck
from .graph import Node

__all__ = [
    "GradcheckError",
    "Node",
    "enable_grad",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]
