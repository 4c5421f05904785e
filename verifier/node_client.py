"""The dApp side of a node's HTTP API: send many inputs in one request, keep only answers whose
receipts check.

:meth:`NodeClient.infer` sends one batched ``POST /v1/models/{modelId}/infer`` (a ``.npy``
body of int64 quantized inputs, shape ``(n, input_len)``) and checks every receipt against
what the dApp holds, before it returns anything: the node it asked signed, for this deployment
(chain id and JobManager), the sub-root rebuilt from the leaf of the dApp's own model, input
and the output it got, through the receipt's ``subIndex``/``subProof``
(:func:`spotcheck.receipts.verify_receipt`). A receipt of another model, input or output, a
path from another request, or a signature for another deployment is a :class:`ReceiptError`.

This is the off-chain check at serve time. Before acting on an output, a dApp checks that its
leaf is committed and final (:meth:`verifier.client.SpotcheckClient.check_receipt`, once the
node's batch is committed: ``GET /v1/jobs/{jobId}`` gives the batch id, index and proof).
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spotcheck.encoding import hash_rows
from spotcheck.errors import ChainError, EncodingError, InputError
from spotcheck.receipts import Receipt, ReceiptDomain, verify_receipt


class ReceiptError(ChainError):
    """A node answered with a receipt that does not check (or no usable answer at all)."""


class NodeRefusedError(InputError):
    """The node refused the request (4xx/5xx): its one-line reason."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(f"node answered {status}: {detail}")


@dataclass(frozen=True, eq=False)
class ServedOutput:
    """One input's answer: its quantized output and the receipt that checked."""

    input_q: list[int]
    output_q: list[int]
    output: list[float]
    receipt: Receipt


class NodeClient:
    """A node's ``/infer`` for one deployment; ``node`` is the address the dApp asks (never
    the one a receipt names)."""

    def __init__(
        self, url: str, node: str, domain: ReceiptDomain, *, timeout_s: float = 60.0
    ) -> None:
        self.url = url.rstrip("/")
        self.node = node
        self.domain = domain
        self.timeout_s = timeout_s

    def infer(
        self, model_id: bytes, inputs_q: Sequence[Sequence[int]] | np.ndarray
    ) -> list[ServedOutput]:
        """Serve ``inputs_q`` (one quantized input per row) in one request; every receipt is
        checked before the answers are returned (:class:`ReceiptError` if one fails)."""
        rows = np.asarray(inputs_q, dtype=np.int64)
        if rows.ndim != 2 or rows.shape[0] < 1:
            raise InputError(f"inputs_q is a non-empty list of inputs, got shape {rows.shape}")
        body = io.BytesIO()
        np.save(body, rows)
        answer = self._post(
            f"{self.url}/v1/models/0x{model_id.hex()}/infer", body.getvalue(), "application/x-npy"
        )
        return check_answers(answer, model_id, rows, self.node, self.domain)

    def _post(self, url: str, body: bytes, content_type: str) -> Any:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"content-type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise NodeRefusedError(err.code, _detail(err)) from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise ReceiptError(f"no usable answer from {url}: {err}") from err


def check_answers(
    answer: Any, model_id: bytes, inputs_q: np.ndarray, node: str, domain: ReceiptDomain
) -> list[ServedOutput]:
    """The answers of a batched request, each receipt checked against the dApp's own model,
    input and the output it got; :class:`ReceiptError` names the first that fails."""
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(inputs_q):
        raise ReceiptError(f"the node answered no list of {len(inputs_q)} results")
    in_hashes = hash_rows(inputs_q)
    out: list[ServedOutput] = []
    for i, result in enumerate(results):
        try:
            receipt = Receipt.from_json(result["receipt"])
            output_q = [int(v) for v in result["output_q"]]
            output = [float(v) for v in result["output"]]
            out_hash = hash_rows(np.asarray([output_q], dtype=np.int64))[0]
        except (KeyError, TypeError, ValueError, OverflowError, EncodingError) as err:
            raise ReceiptError(f"result {i}: malformed answer: {err}") from err
        if receipt.model_id != model_id:
            raise ReceiptError(f"result {i}: the receipt names another model")
        if receipt.input_hash != in_hashes[i]:
            raise ReceiptError(f"result {i}: the receipt names another input")
        if receipt.output_hash != out_hash:
            raise ReceiptError(f"result {i}: the receipt names another output")
        if not verify_receipt(receipt, node, domain):
            raise ReceiptError(
                f"result {i}: the receipt is not signed by {node} for this deployment "
                f"(chain {domain.chain_id}, JobManager {domain.job_manager})"
            )
        out.append(ServedOutput(inputs_q[i].tolist(), output_q, output, receipt))
    return out


def _detail(err: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(err.read())["detail"])
    except Exception:  # not the node's JSON error: the status line
        return str(err.reason)
