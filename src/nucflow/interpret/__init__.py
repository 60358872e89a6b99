"""Model interpretation: leave-one-out (LOO) scores of sequence units.

Modules: :mod:`.edits` (units and edits), :mod:`.incremental` and :mod:`.scoring` (reference
and fast predictions), :mod:`.loo` (scores), :mod:`.run` (files, shards), :mod:`.tables`
(gathering, arrays; no torch), :mod:`.plots`.
"""
