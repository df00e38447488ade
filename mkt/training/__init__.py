"""Training and evaluating MKT (what the app itself never imports): the training model with its
two streams (``model``), losses, metrics, data sets (``data``, ``batches``), the configuration
(``config``), the two stages (``stages``), the trainer (``train``: ``python -m mkt.training.train``),
checkpoints, evaluation (``evaluate``), the synthetic world's tiny CLIP (``pretrain``,
``pretrain_data``), fitting relevance constants (``calibrate``) and the results table
(``experiments``)."""
