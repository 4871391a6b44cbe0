"""NumPy reference implementations of CNN layers with hand-written backward passes.

Every layer here imports only NumPy at run time; PyTorch appears only in ``gradcheck`` and the
``numpy_cnn`` twin, which use it as an independent oracle. See docs/backprop.md for the formulas and
the lines that implement them.
"""

from cnnlab.reference.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from cnnlab.reference.batchnorm import BatchNorm2d
from cnnlab.reference.conv import Conv2d, ConvGeometry, col2im, conv2d_backward, conv2d_forward, im2col
from cnnlab.reference.layer import Layer, Parameter
from cnnlab.reference.linear import Dropout, Flatten, Linear
from cnnlab.reference.loss import SoftmaxCrossEntropy
from cnnlab.reference.optim import SGD
from cnnlab.reference.pool import AvgPool2d, MaxPool2d
from cnnlab.reference.sequential import Sequential

__all__ = [
    "SGD", "AvgPool2d", "BatchNorm2d", "Conv2d", "ConvGeometry", "Dropout", "Flatten", "Layer", "LeakyReLU",
    "Linear", "MaxPool2d", "Parameter", "ReLU", "Sequential", "Sigmoid", "SoftmaxCrossEntropy", "Tanh",
    "col2im", "conv2d_backward", "conv2d_forward", "im2col",
]
