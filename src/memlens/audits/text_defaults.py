"""The text audit's names and defaults, in a module without heavy imports (the command line reads them to build its
options; :mod:`memlens.audits.text` uses the same values)."""

__all__ = ["TEXT_DATASETS", "TEXT_MODELS", "DEFAULT_REPETITIONS"]

#: Corpus names the text audit accepts (any other text goes through ``text_file``).
TEXT_DATASETS = ("fortunes",)
#: Model names of the text audit.
TEXT_MODELS = ("char-lm",)
#: Repetition counts of the inserted canaries (each used by ``canaries_per_repetition`` canaries).
DEFAULT_REPETITIONS = (1, 2, 4, 8, 16)
