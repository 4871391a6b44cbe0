"""cnnlab: train, evaluate and explain convolutional image classifiers on small datasets."""

__version__ = "0.1.0"
