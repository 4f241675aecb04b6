"""The package layout's one rule: dependencies point one way, tools -> batch -> stream -> chain (-> config), and the
review console (review -> stream -> chain) beside the tools.

Two checks. Statically, every ``import`` statement in every module of a package (top level or inside a function)
is read with :mod:`ast`, so a lazy import cannot hide a wrong-way dependency. Dynamically, the chain is imported
and run in a fresh interpreter in which the Kafka and MongoDB clients cannot be imported at all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "extractor"

# what each part may NOT import (by module prefix)
FORBIDDEN = {
    "chain": ("extractor.stream", "extractor.batch", "extractor.tools", "extractor.review", "confluent_kafka", "kafka",
              "pymongo", "bson", "evaluation", "pyspark", "fastapi", "starlette"),
    "stream": ("extractor.batch", "extractor.tools", "extractor.review", "evaluation", "pyspark", "fastapi"),
    # the review console sits beside the tools: it uses the stream's modules, the chain, the evaluation and the
    # lexicon check (tools/lexicon_check.py: rows are validated exactly like `lexicon check`), never the benches
    "review": ("extractor.batch", "extractor.tools.bench", "extractor.tools.harness", "extractor.tools.demo",
               "pyspark"),
    # batch -> stream -> chain: the Spark backfill reuses the stream's formats and writer, never the tools
    "batch": ("extractor.tools", "evaluation"),
    "config": ("extractor.chain", "extractor.stream", "extractor.batch", "extractor.tools", "confluent_kafka",
               "pymongo", "pyspark"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules_of(part: str) -> list[Path]:
    target = PACKAGE / part
    return sorted(target.rglob("*.py")) if target.is_dir() else [PACKAGE / f"{part}.py"]


def _violations(part: str) -> list[str]:
    bad = []
    for path in modules_of(part):
        for name in sorted(imported_modules(path)):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[part]):
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_dependencies_point_one_way(part: str) -> None:
    assert modules_of(part), f"no modules found for extractor.{part}"
    assert _violations(part) == []


def test_the_check_catches_a_wrong_way_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from extractor.stream.kafka import StopFlag\n    import pymongo\n")
    assert {"extractor.stream.kafka", "pymongo"} <= imported_modules(module)


def test_every_module_opens_with_a_docstring() -> None:
    missing = [str(p.relative_to(REPO)) for p in sorted(PACKAGE.rglob("*.py"))
               if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))]
    assert missing == []


def test_chain_runs_without_kafka_or_mongo_clients() -> None:
    """In a fresh interpreter where importing confluent_kafka / pymongo fails, the chain still loads and extracts
    (through the one documented import), and neither client module ends up loaded."""
    code = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("confluent_kafka", "kafka", "pymongo", "bson"):
                    raise ImportError(f"blocked in this test: {name}")
                return None

        sys.meta_path.insert(0, Block())
        from extractor import Chain, load_settings

        chain = Chain.from_settings(load_settings(stages=("regex", "lexicon")))
        result = chain.extract("Patient shows signs of flu. Prescribed ibuprofen.")
        assert result.illness and result.medicine, result.to_dict()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("confluent_kafka", "pymongo", "bson")
                        or m.startswith(("extractor.stream", "extractor.tools")))
        assert not loaded, loaded
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
