"""The review console (``python -m extractor review``): a web page where a person works the dead-lettered and
low-confidence entries, turns decisions into lexicon rows, measures their effect and publishes them to the workers.

Modules: :mod:`~extractor.review.auth` (password, sessions, CSRF), :mod:`~extractor.review.queues` (the queues
in MongoDB and the dead-letter topic's copy), :mod:`~extractor.review.edits` (decisions -> validated lexicon rows,
written atomically), :mod:`extractor.stream.lexicon_updates` (the ``lexicon-updates`` topic workers follow),
:mod:`~extractor.review.app` (FastAPI routes, Jinja2 templates) and :mod:`~extractor.review.cli` (the command).
The chain never imports this package.
"""
