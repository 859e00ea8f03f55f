"""audioclf: the code that get_data.py, preprocessing.py, training.py and pipeline.py share.

One job per module:
- ``synthetic``: the built-in dataset, generated in UrbanSound8K layout.
- ``sources``: where raw audio comes from (generated data or a local copy).
- ``metadata``: one normalized table for every source, and its validation.
- ``audio``: decoding, mono mixing and resampling.
- ``features``: the log-mel feature config and transform.
- ``store``: datasets (a local store offline, ClearML Datasets online).
- ``tracking``: the run (ClearML task, TensorBoard, a local run folder).
- ``models``, ``trainer``, ``evaluation``: the CNNs, the loop and the metrics.

Nothing here parses argv or starts a ClearML task at import.
"""

__version__ = "0.1.0"
