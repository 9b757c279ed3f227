"""TagBox Pipeline: stem extraction steered by music taggers, with no separation training.

Data flows one way: audio_io -> chunking -> priors + taggers -> steering -> assembly -> post -> stems.
"""

__version__ = "0.1.0"
