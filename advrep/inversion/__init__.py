"""Generator inversion by latent optimisation (Creswell & Bharath): ``invert`` works on any generator;
``invert_method`` / ``compare_generators`` apply it to advrep's trained runs."""

from .invert import INITS, LOSSES, OPTIMIZERS, SCHEDULES, SUPPORTS, InversionResult, invert
from .models import EncoderOf, GeneratorOf, compare_generators, format_ranking, invert_method, write_inversion

__all__ = ["INITS", "LOSSES", "OPTIMIZERS", "SCHEDULES", "SUPPORTS", "InversionResult", "invert",
           "EncoderOf", "GeneratorOf", "compare_generators", "format_ranking", "invert_method",
           "write_inversion"]
