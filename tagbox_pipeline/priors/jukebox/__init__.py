"""OpenAI Jukebox's 5b VQ-VAE as a TagBox prior (our own implementation; no OpenAI code is used).

* :mod:`.vqvae` — the frozen encoders, decoders and codebooks of the three levels;
* :mod:`.quantiser` — nearest-code lookup and our straight-through step (codebooks are only read);
* :mod:`.checkpoint` — official / transformers checkpoints -> one canonical state dict, safely;
* :mod:`.prior` — the :class:`~tagbox_pipeline.priors.base.Prior` that steers the latents.

The weights are under OpenAI's Noncommercial Use License, which also covers what they create:
stems made with this prior may not be used commercially.
"""

from .checkpoint import LICENCE, VQVAE_SPEC, load_checkpoint, load_vqvae, resolve_weights
from .prior import JukeboxPrior
from .vqvae import JukeboxVQVAE, VQVAEConfig

__all__ = ["LICENCE", "VQVAE_SPEC", "JukeboxPrior", "JukeboxVQVAE", "VQVAEConfig", "load_checkpoint",
           "load_vqvae", "resolve_weights"]
