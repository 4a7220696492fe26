"""The networks of MCAT: context encoder C, forward model F, actor and critics (and, later, H)."""

from mcat.models.actor_critic import Actor, TwinCritic
from mcat.models.context import ContextEncoder
from mcat.models.forward import ForwardModel
from mcat.models.nets import RunningNorm, mlp

__all__ = ["Actor", "ContextEncoder", "ForwardModel", "RunningNorm", "TwinCritic", "mlp"]
