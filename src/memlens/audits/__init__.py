"""Audits: one pipeline (validate, run directory, sharded training, resume, measures, files, report) and the
recipes built on it: the image/tabular audit, the text audit, leave-one-out, the one-run canary audit."""
