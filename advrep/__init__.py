"""advrep: adversarial representation learning and GAN inversion in PyTorch."""

__version__ = "0.1.0"
