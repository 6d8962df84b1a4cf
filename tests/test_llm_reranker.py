"""LLM rerankers (Qwen3-Reranker style) on a tiny randomly initialised causal LM built here: batched scores equal the
yes/no logit difference computed directly from the whole prompt."""
import json

import numpy as np
import pytest
import torch

from rerank_pipeline.rerankers import LLMReranker, Reranker, load_reranker

PROMPT = {"template": "query : {query} document : {document} relevant ?", "yes": "yes", "no": "no"}
DOCS = ["patagonia store in tokyo japan", "cheap flights to lima", "japan rail pass", "a tent"]


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    from rerank_pipeline.encoders import default_encoder_path, load_tokenizer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llm")
    config = LlamaConfig(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512)
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    load_tokenizer(default_encoder_path()).save_pretrained(path)
    (path / "rerank_prompt.json").write_text(json.dumps(PROMPT))
    return path


def direct(path, template, query, docs):
    """logit(yes) - logit(no) at the last position of each whole prompt, one at a time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    yes, no = (tok.convert_tokens_to_ids(w) for w in ("yes", "no"))
    out = []
    with torch.no_grad():
        for d in docs:
            ids = tok(template.format(query=query, document=d), add_special_tokens=False)["input_ids"]
            last = model(input_ids=torch.tensor([ids])).logits[0, -1]
            out.append(float(last[yes] - last[no]))
    return np.array(out)


def test_batched_scores_equal_the_direct_yes_no_difference(llm_dir):
    reranker = Reranker.load(llm_dir, "cpu")  # recognised as a causal LM, prompt read from the directory
    assert isinstance(reranker, LLMReranker)
    ranked = reranker.rank("japan travel", DOCS)
    scores = np.array([r["score"] for r in sorted(ranked, key=lambda r: r["corpus_id"])])
    np.testing.assert_allclose(scores, direct(llm_dir, PROMPT["template"], "japan travel", DOCS), atol=1e-4)
    # many queries in one call, lists of different lengths: the same as one at a time
    batch = reranker.rerank_texts(["japan travel", "tent"], [DOCS, DOCS[:2]])
    np.testing.assert_allclose(batch[1], direct(llm_dir, PROMPT["template"], "tent", DOCS[:2]), atol=1e-4)


def test_yaml_prompt_overrides_and_bad_prompts_fail_clearly(llm_dir, tmp_path):
    other = {"template": "is {document} about {query} ? answer :", "yes": "yes", "no": "no"}
    with pytest.raises(ValueError, match="query.*then.*document"):
        load_reranker({"type": "llm-reranker", "model": str(llm_dir), "prompt": other})
    other["template"] = "about {query} : {document} ? answer :"
    reranker = load_reranker({"type": "llm-reranker", "model": str(llm_dir), "prompt": other})
    np.testing.assert_allclose(reranker.rerank_texts(["lima"], [DOCS])[0],
                               direct(llm_dir, other["template"], "lima", DOCS), atol=1e-4)
    with pytest.raises(ValueError, match="must be one"):
        load_reranker({"type": "llm-reranker", "model": str(llm_dir), "prompt": {**PROMPT, "yes": "absolutely yes"}})
    reranker.save(tmp_path / "copy")
    (tmp_path / "copy" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="safetensors"):
        Reranker.load(tmp_path / "copy")
