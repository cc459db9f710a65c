"""``ferrograd.nn``: modules, layers, activations, losses, initialisers and
regularisation helpers, with PyTorch's names, shapes and defaults (so state dicts move
between the two).

>>> import ferrograd.nn as nn
>>> model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid())
>>> loss = nn.BCELoss()(model(x), y)
"""

from . import functional, init, utils
from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Softsign, Tanh
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .layers import Dropout, Flatten, Identity, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss
from .module import Module, ModuleList, Parameter, Sequential

__all__ = [
    "functional",
    "init",
    "utils",
    "Module",
    "Parameter",
    "Sequential",
    "ModuleList",
    "Linear",
    "Dropout",
    "Flatten",
    "Identity",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softsign",
    "Softplus",
    "Softmax",
    "LogSoftmax",
    "ELU",
    "GELU",
    "MSELoss",
    "L1Loss",
    "HuberLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "NLLLoss",
]
__all__ += ["Conv1d", "Conv2d", "ConvTranspose2d"]

from .normalization import BatchNorm1d, BatchNorm2d  # noqa: E402
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d, MinPool1d, MinPool2d  # noqa: E402

__all__ += ["MaxPool2d", "MinPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "MaxPool1d", "MinPool1d", "AvgPool1d", "BatchNorm1d", "BatchNorm2d"]

from .sparse import Embedding  # noqa: E402

__all__ += ["Embedding"]

from . import rnn  # noqa: E402
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: E402

from .utils import rnn as _utils_rnn  # noqa: E402,F401  (nn.utils.rnn, as in PyTorch)
__all__ += ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]
