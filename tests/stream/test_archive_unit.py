"""The archiver without servers: object runs, Parquet round trip, resume after a crash, commit after upload.
(tests/integration/test_archive.py runs it against Kafka and the GCS emulator.)"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from extractor.config import Settings
from extractor.storage import StorageError, filesystem
from extractor.stream.archive import Archiver, Raw, archived_through, object_path, runs, to_parquet

DAY = 86_400_000


def _raw(offset: int, size: int = 10, day: int = 0, partition: int = 0) -> Raw:
    return Raw(b"k", b"v" * size, [("h", b"x")], 1_700_000_000_000 + day * DAY, 1, "t", partition, offset)


class Msg:
    def __init__(self, r: Raw) -> None:
        self.r = r

    def key(self): return self.r.key
    def value(self): return self.r.value
    def headers(self): return self.r.headers
    def timestamp(self): return (self.r.timestamp_type, self.r.timestamp_ms)
    def topic(self): return self.r.topic
    def partition(self): return self.r.partition
    def offset(self): return self.r.offset
    def error(self): return None


class FakeConsumer:
    def __init__(self, fail_commit: bool = False) -> None:
        self.commits: list[dict] = []
        self.fail_commit = fail_commit

    def commit(self, offsets=None, asynchronous=True):
        # asynchronous only: a synchronous commit can wait for ever after a broker restart (it held a sink so)
        assert asynchronous, "the archiver must never block on a commit"
        if self.fail_commit:
            raise RuntimeError("crash before the commit")
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})
        return None


def test_runs_cut_at_a_new_date_and_at_the_size_limit() -> None:
    records = [_raw(0), _raw(1), _raw(2, day=1), _raw(3, size=500, day=1), _raw(4, day=1)]
    cut = runs(records, max_bytes=100)
    assert [[r.offset for r in run] for run in cut] == [[0, 1], [2], [3], [4]]  # a record larger than the limit alone
    assert {run[0].date for run in cut} == {"2023-11-14", "2023-11-15"}


def test_parquet_keeps_every_byte() -> None:
    records = [_raw(7), Raw(None, b"\xff\xfe", [], 1_700_000_000_000, 0, "t", 2, 8),
               Raw(b"k", None, [], 0, 0, "t", 2, 9)]
    table = pq.read_table(__import__("io").BytesIO(to_parquet(records))).to_pylist()
    assert [(r["key"], r["value"], r["offset"], r["partition"]) for r in table] == [
        (b"k", b"v" * 10, 7, 0), (None, b"\xff\xfe", 8, 2), (b"k", None, 9, 2)]
    assert table[0]["headers"] == [{"key": "h", "value": b"x"}]


def test_commit_only_after_upload_and_resume_after_a_crash(tmp_path: Path) -> None:
    s = Settings(archive_url=f"file://{tmp_path}/arch", archive_max_object_bytes=30)
    fs, root = filesystem(s.archive_url, s)
    dying = FakeConsumer(fail_commit=True)
    crashed = Archiver(s, consumer=dying, fs=fs, root=root)
    for o in range(5):
        crashed.add(Msg(_raw(o)))
    crashed.flush()  # uploaded, then the process died before the commit
    assert dying.commits == [] and crashed.commits.pending == {("t", 0): 5}
    assert archived_through(fs, root, "t", 0) == 4
    assert fs.exists(object_path(root, "t", "2023-11-14", 0, 0, 1))
    # the restarted archiver reads offsets 0..6 again from the last committed offset: it skips what the objects
    # hold, archives the rest, and commits both
    consumer = FakeConsumer()
    again = Archiver(s, consumer=consumer, fs=fs, root=root)

    class TP:
        topic, partition = "t", 0

    again._on_assign(consumer, [TP()])
    for o in range(7):
        again.add(Msg(_raw(o)))
    assert again.stats.skipped == 5
    again.flush()
    assert consumer.commits == [{("t", 0): 7}]
    offsets = sorted(int(p.rsplit("-", 1)[1].split(".")[0]) for p in fs.glob(f"{root}/raw/**/offsets-*.parquet"))
    assert offsets == [1, 3, 4, 6]  # objects 0-1, 2-3, 4, 5-6: nothing twice


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="unknown storage scheme 'ftp'"):
        filesystem("ftp://x/y", Settings())


def test_lag_counts_what_is_not_yet_in_an_object(tmp_path: Path) -> None:
    from extractor.stream import metrics

    class TP:
        topic, partition = "t", 0

    class Lagging(FakeConsumer):
        def assignment(self):
            return [TP()]

        def get_watermark_offsets(self, tp, cached=True):
            return (0, 10)

    s = Settings(archive_url=f"file://{tmp_path}/arch")
    fs, root = filesystem(s.archive_url, s)
    a = Archiver(s, consumer=Lagging(), fs=fs, root=root)
    for o in range(4):
        a.add(Msg(_raw(o)))
    assert a.update_lag() == {("t", 0): 10}  # buffered is not archived
    a.flush()
    assert a.update_lag() == {("t", 0): 6}
    assert metrics.CONSUMER_LAG.labels("archiver", "t", "0")._value.get() == 6


def test_commits_are_asynchronous_one_in_flight_and_sent_again_until_acknowledged(tmp_path: Path) -> None:
    """The archiver commits like the worker and the sink (OffsetCommitter): never a blocking commit, the next
    one only after the last one's result, a refused one sent again."""
    from types import SimpleNamespace

    s = Settings(archive_url=f"file://{tmp_path}/arch")
    fs, root = filesystem(s.archive_url, s)
    consumer = FakeConsumer()
    a = Archiver(s, consumer=consumer, fs=fs, root=root)
    assert consumer.on_commit == a.commits.on_commit  # the fake gets the committer's callback
    for o in range(2):
        a.add(Msg(_raw(o)))
    a.flush()
    for o in range(2, 4):
        a.add(Msg(_raw(o)))
    a.flush()  # uploaded; its commit waits for the one in flight
    assert consumer.commits == [{("t", 0): 2}]
    tp = SimpleNamespace(topic="t", partition=0, offset=2, error=None)
    consumer.on_commit(None, [tp])
    a.commits.commit(consumer)
    assert consumer.commits[-1] == {("t", 0): 4}
    # refused (the coordinator reloading after a broker restart): sent again, nothing dropped
    err = SimpleNamespace(name=lambda: "COORDINATOR_LOAD_IN_PROGRESS", code=lambda: 14, fatal=lambda: False)
    consumer.on_commit(err, [SimpleNamespace(topic="t", partition=0, offset=4, error=None)])
    assert a.commits.pending == {("t", 0): 4}
    a.commits.commit(consumer)
    assert consumer.commits[-1] == {("t", 0): 4} and len(consumer.commits) == 3


def test_an_assignment_lists_the_archive_once_per_topic(tmp_path: Path) -> None:
    """Where to resume each assigned partition comes from one listing of the topic's prefix, not one per
    partition (each is a paginated listing of the whole archive on an object store)."""
    from types import SimpleNamespace

    from extractor.stream.archive import archived_through_all

    s = Settings(archive_url=f"file://{tmp_path}/arch")
    fs, root = filesystem(s.archive_url, s)
    for date, p, first, last in [("2023-11-14", 0, 0, 9), ("2023-11-15", 0, 10, 12), ("2023-11-14", 1, 0, 4),
                                 ("2023-11-13", 1, 5, 7), ("2023-11-15", 3, 0, 0)]:
        path = object_path(root, "t", date, p, first, last)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(path, b"x")
    fs.pipe_file(f"{root}/raw/topic=t/notes.txt", b"not an object")
    assert archived_through_all(fs, root, "t") == {0: 12, 1: 7, 3: 0}  # an older date may hold the last offsets
    assert archived_through_all(fs, root, "absent") == {}

    calls: list[str] = []
    real_find = fs.find

    def counting_find(path: str, *a, **kw):
        calls.append(path)
        return real_find(path, *a, **kw)

    fs.find = counting_find
    a = Archiver(s, consumer=FakeConsumer(), fs=fs, root=root)
    a._on_assign(None, [SimpleNamespace(topic="t", partition=p) for p in range(4)])
    assert len(calls) == 1
    assert a.resume == {("t", 0): 13, ("t", 1): 8, ("t", 3): 1}


def _objects(fs, root: str) -> list[tuple[int, int]]:
    names = fs.glob(f"{root}/raw/**/offsets-*.parquet")
    return sorted(tuple(int(x) for x in p.rsplit("/", 1)[1][len("offsets-"):-len(".parquet")].split("-"))
                  for p in names)


def _assign_without_listing(a: Archiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """``a._on_assign`` for partition t[0], failing if it lists the archive (fsspec shares filesystem
    instances: the patch is undone right after)."""
    def refuse(*args, **kw):
        raise AssertionError("an assignment listed the archive")

    with monkeypatch.context() as m:
        m.setattr(a.fs, "find", refuse)
        a._on_assign(None, [_TP()])


class _TP:
    topic, partition = "t", 0


def test_a_restart_reads_the_progress_marker_not_the_whole_archive(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The marker each flush writes first names its objects: an assignment checks those, never lists the topic."""
    from extractor.stream.archive import progress_path

    s = Settings(archive_url=f"file://{tmp_path}/arch", archive_max_object_bytes=30)
    fs, root = filesystem(s.archive_url, s)
    a = Archiver(s, consumer=FakeConsumer(fail_commit=True), fs=fs, root=root)
    for o in range(3):
        a.add(Msg(_raw(o)))
    a.flush()
    for o in range(3, 6):
        a.add(Msg(_raw(o, day=1)))
    a.flush()  # uploaded; the commits never happened
    marker = __import__("json").loads(fs.cat_file(progress_path(root, "t", 0)))
    assert (marker["first"], marker["last"]) == (3, 5) and all(n.startswith("raw/topic=t/date=") for n in
                                                             marker["objects"])
    again = Archiver(s, consumer=FakeConsumer(), fs=fs, root=root)
    _assign_without_listing(again, monkeypatch)
    assert again.resume == {("t", 0): 6}


def test_a_flush_cut_short_resumes_after_the_objects_it_wrote(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Storage failed in the middle of a flush (the archiver stopping, so it gave up): the restart resumes after
    the last object that exists, writes the rest, and no offset is in two objects."""
    s = Settings(archive_url=f"file://{tmp_path}/arch", archive_max_object_bytes=30)
    fs, root = filesystem(s.archive_url, s)
    a = Archiver(s, consumer=FakeConsumer(), fs=fs, root=root)
    for o in range(6):
        a.add(Msg(_raw(o)))
    real_pipe, calls = fs.pipe_file, []

    def failing_pipe(path, data, **kw):
        calls.append(path)
        if len(calls) == 3:  # the marker, the first object, then storage fails
            raise OSError("storage down")
        return real_pipe(path, data, **kw)

    a.stop.set()  # stopping: the failed upload is not retried
    with monkeypatch.context() as m:
        m.setattr(fs, "pipe_file", failing_pipe)
        with pytest.raises(OSError):
            a.flush()
    assert _objects(fs, root) == [(0, 1)]
    consumer = FakeConsumer()
    again = Archiver(s, consumer=consumer, fs=fs, root=root)
    _assign_without_listing(again, monkeypatch)
    assert again.resume == {("t", 0): 2}
    for o in range(7):  # read again from the last commit (none: offset 0)
        again.add(Msg(_raw(o)))
    again.flush()
    assert _objects(fs, root) == [(0, 1), (2, 3), (4, 5), (6, 6)]
    assert consumer.commits == [{("t", 0): 7}]


def test_a_marker_without_objects_and_an_unreadable_marker(tmp_path: Path) -> None:
    """A crash right after the marker: nothing of its flush exists, so the archive holds what came before it. An
    unreadable marker falls back to listing the archive."""
    from extractor.stream.archive import archived_through_marker, progress_path

    s = Settings(archive_url=f"file://{tmp_path}/arch")
    fs, root = filesystem(s.archive_url, s)
    fs.makedirs(progress_path(root, "t", 0).rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(progress_path(root, "t", 0), b'{"first": 40, "last": 49, "objects": ["raw/topic=t/date=2023-11-14/'
                 b'partition=0/offsets-00000000000000000040-00000000000000000049.parquet"]}')
    assert archived_through_marker(fs, root, "t", 0) == 39
    fs.pipe_file(progress_path(root, "t", 0), b'{"first": 0, "last": 0, "objects": []}')
    assert archived_through_marker(fs, root, "t", 0) is None  # nothing archived yet
    fs.pipe_file(progress_path(root, "t", 0), b"{not json")
    path = object_path(root, "t", "2023-11-14", 0, 0, 9)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, b"x")
    a = Archiver(s, consumer=FakeConsumer(), fs=fs, root=root)
    a._on_assign(None, [_TP()])
    assert a.resume == {("t", 0): 10}  # from the listing
