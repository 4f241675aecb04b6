"""Commands for people around the chain and the stream: :mod:`.extract`, :mod:`.lexicon_check`, :mod:`.generate`,
:mod:`.bench` (one module per benchmark), :mod:`.demo` and the process :mod:`.harness` it shares with the tests."""
