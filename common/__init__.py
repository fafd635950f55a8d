"""Infrastructure shared by the training scripts: replay buffer, evaluation,
normalisation, logging, checkpoints, command-line handling. Nothing here knows
about a particular algorithm."""
