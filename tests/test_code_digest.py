"""The source digest in the trainings' checkpoint fingerprints follows the imports: a change
to any file a training imports, directly or not, means new checkpoints; other files do not."""

from pathlib import Path

from mcis_core.common.code import REPO, import_closure, source_digest


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_digest_changes_with_what_the_entry_imports_only(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "mcis_core/__init__.py": '"""pkg"""\n',
            "mcis_core/train.py": "from mcis_core.util import helper\n",
            "mcis_core/util/__init__.py": "from .maths import twice\n",
            "mcis_core/util/maths.py": "def twice(x):\n    return 2 * x\n",
            "mcis_core/unrelated.py": "VALUE = 1\n",
        },
    )
    entry = tmp_path / "mcis_core/train.py"
    assert {p.relative_to(tmp_path).as_posix() for p in import_closure(entry, tmp_path)} == {
        "mcis_core/__init__.py",
        "mcis_core/train.py",
        "mcis_core/util/__init__.py",
        "mcis_core/util/maths.py",
    }
    before = source_digest(entry, tmp_path)
    (tmp_path / "mcis_core/unrelated.py").write_text("VALUE = 2\n")
    assert source_digest(entry, tmp_path) == before
    (tmp_path / "mcis_core/util/maths.py").write_text("def twice(x):\n    return x + x\n")
    assert source_digest(entry, tmp_path) != before


def test_the_trainings_digest_covers_their_loops_and_data() -> None:
    closure = {
        p.relative_to(REPO).as_posix()
        for p in import_closure(REPO / "mcis_core/classifier/train.py")
    }
    assert {
        "mcis_core/classifier/data.py",
        "mcis_core/models/inputs.py",
        "mcis_core/training/loop.py",
        "mcis_core/training/checkpoints.py",
    } <= closure
    assert "mcis_core/evaluate/crf.py" not in closure
