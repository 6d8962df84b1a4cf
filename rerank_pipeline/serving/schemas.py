"""The HTTP API's request bodies as pydantic models: types and shapes are checked where they are declared (a wrong
one answers 422 naming the field); the caps a server is started with (limits.Limits) are checked by the routes."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, StringConstraints

from ..pipeline import SCORE_MODES

Text = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients may send fields of newer versions


class SearchBatch(Body):
    """`POST /search`: several queries answered in one pipeline call."""
    queries: list[StrictStr] = Field(min_length=1)
    k: StrictInt = Field(10, ge=1)
    session: Annotated[str, StringConstraints(strict=True, max_length=128)] = "anonymous"


class Click(Body):
    """`POST /click`: a result of a logged impression was opened."""
    request_id: StrictStr
    id: StrictStr


class Return(Click):
    """`POST /return`: the user came back after `dwell_s` seconds on the clicked result."""
    dwell_s: float = Field(ge=0, allow_inf_nan=False, strict=True)


class RerankDocument(Body):
    text: StrictStr


class RerankBody(Body):
    """Cohere's rerank request (documents as strings or `{"text": ...}` objects), plus `score_mode`: raw logits,
    sigmoid probabilities or per-query min-max (pipeline.scaled_scores)."""
    model: Optional[StrictStr] = None
    query: Text
    documents: list[Union[StrictStr, RerankDocument]] = Field(min_length=1)
    top_n: Optional[StrictInt] = Field(None, ge=1)
    return_documents: StrictBool = False
    max_tokens_per_doc: Optional[StrictInt] = Field(None, ge=1)
    score_mode: Literal[SCORE_MODES] = "raw"  # type: ignore[valid-type]
