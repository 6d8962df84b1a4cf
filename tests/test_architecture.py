"""Layers only point down: no import circle between the package's rooms (its subpackages and top-level modules),
counting imports inside functions too. The one upward call by design, `Reranker.load` on the base class asking the
registry in `rerankers/__init__.py` which family a directory holds, stays inside the rerankers room."""
import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rerank_pipeline"


def room(module: list[str]) -> str:
    """'rerank_pipeline.index.store' -> 'index/', 'rerank_pipeline.pipeline' -> 'pipeline'."""
    return module[1] + "/" if len(module) > 1 and (PACKAGE / module[1]).is_dir() else module[-1]


def imports() -> dict[str, set[str]]:
    """room -> the rooms its modules import (module level and inside functions)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":  # a package's own module: relative imports start from the package itself
            parts = parts[:-1]
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = base + (node.module.split(".") if node.module else [])
                if target and target[0] == "rerank_pipeline" and len(parts) > 1:
                    for name in ([None] if node.module else []) + [a.name for a in node.names]:
                        full = target + ([name] if name else [])
                        if (PACKAGE.parent.joinpath(*full).with_suffix(".py").is_file()
                                or PACKAGE.parent.joinpath(*full).is_dir()):
                            if len(full) > 1 and room(full) != room(parts):
                                edges[room(parts)].add(room(full))
    return edges


def test_no_import_circle_between_rooms():
    edges = imports()
    assert edges["index/"] and edges["rerankers/"]  # the reader sees imports at all

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    circles = sorted((a, b) for a in list(edges) for b in edges[a] if a in reaches(b))
    assert circles == [], f"rooms importing each other (directly or around a circle): {circles}"


def test_the_search_path_does_not_import_torch_at_module_level():
    torch_free = ["pipeline.py", "documents.py", "rerankers/scorer.py", "rerankers/crossjem/runtime.py",
                  "rerankers/crossjem/packing.py", "graphs/runtime.py", "retrievers/dense.py", "retrievers/bm25.py",
                  "rerankers/combine.py", "rerankers/__init__.py", "rerankers/crossjem/__init__.py", "encoders.py"]
    for name in torch_free:
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        modules = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module for n in top if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in modules if m.split(".")[0] in ("torch", "transformers", "sentence_transformers")}, name
