"""The README's Python blocks run as pasted, in order, on a fresh directory holding the index the README's command
line section builds ("products", here the demo corpus). Blocks written for a running server or for code of the
reader's own app (their first line says so) are only compiled."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
ELSEWHERE = ("# Against a running", "# In your app")


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_readme_python_blocks_run_as_pasted(tmp_path, monkeypatch):
    from rerank_pipeline.demo import write_demo_corpus
    from rerank_pipeline.index import build_index

    blocks = python_blocks()
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    build_index(write_demo_corpus(tmp_path / "products.jsonl"), "products", "indexes", show_progress=False)
    namespace: dict = {}
    ran = 0
    for i, block in enumerate(blocks):
        code = compile(block, f"README.md python block {i + 1}", "exec")  # every block is valid Python
        if block.startswith(ELSEWHERE):
            continue
        exec(code, namespace)  # noqa: S102 - the README's own examples
        ran += 1
    assert ran >= 4
    assert Path("run.trec").is_file()  # what the first block writes, the second reads
    assert [h.docid for h in namespace["reranked"]["1"]][:1] != []


@pytest.mark.parametrize("block", [b for b in python_blocks() if b.startswith(ELSEWHERE)])
def test_blocks_for_a_server_or_an_app_name_what_they_need(block):
    compile(block, "README.md", "exec")
