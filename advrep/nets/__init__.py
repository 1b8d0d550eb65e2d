"""Plain nn.Modules: no training logic lives here."""

from .conv import DCGANFeatures, DCGANGenerator, ImageEncoder
from .factory import bigan_networks, make_encoder, make_generator, make_joint_discriminator
from .joint import JointScoreDiscriminator
from .mlp import JointDiscriminator, MLPDiscriminator, MLPEncoder, MLPGenerator, init_normal_
from .priors import PRIORS, get_prior
from .resnet import ResNetFeatures, ResNetGenerator

__all__ = ["JointDiscriminator", "MLPDiscriminator", "MLPEncoder", "MLPGenerator", "init_normal_",
           "PRIORS", "get_prior", "DCGANFeatures", "DCGANGenerator", "ImageEncoder",
           "JointScoreDiscriminator", "ResNetFeatures", "ResNetGenerator", "bigan_networks", "make_encoder",
           "make_generator", "make_joint_discriminator"]
