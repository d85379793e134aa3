"""Training: the one loop (``trainer.Trainer``), atomic checkpoints, distributed helpers and
``pretrain.pretrain``, which puts them together."""
