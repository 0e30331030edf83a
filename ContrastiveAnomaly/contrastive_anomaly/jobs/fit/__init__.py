"""``contrastive-anomaly fit``: train a calibrated model on the user's own healthy scans, resumably.

Modules, one step each: :mod:`.request` (options and the ``fit.json`` record), :mod:`.cache` (preprocessing cache),
:mod:`.split` (subject split, frozen plan), :mod:`.train` (both stages), :mod:`.calibrate` (rule-B threshold and
healthy statistics), :mod:`.card` and :mod:`.hardware` (the model card), :mod:`.publish` (model folder, registry),
:mod:`.run` (the whole job), :mod:`.command` (the CLI parser and body). Scan discovery is
:mod:`contrastive_anomaly.data.sources`. Nothing heavy is imported here, so the CLI's ``--help`` stays fast.
"""
