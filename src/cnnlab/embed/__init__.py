"""Face embeddings: metric-learning training, identity-disjoint evaluation (verification and
identification), galleries and search, baselines, and the one-photo-per-person experiment.

Built on ``runs``, ``models``, ``data`` and ``metrics``; independent of ``train``, ``explain``,
``report`` and ``serve``.
"""
