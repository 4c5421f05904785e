"""Audit (v2): the dApp's receipt check never looks at the model's input domain.

Challengers never dispute a leaf whose input is outside ``[inLo, inHi]`` (challenger.service
``_outside_domain`` -> UNDISPUTABLE; challenger.batches refuses such listings), so such a leaf
is at no risk. A cheating node that accepts an out-of-domain question (an honest node answers
422) and serves a wrong output makes the dApp's ``check_receipt_onchain`` say ``ok`` once the
batch is final. An element above r/2 can be in no registered domain at all
(``ModelRegistry`` requires ``-r/2 <= inLo <= inHi <= r/2``), so it shows the check ignores
the domain entirely. The same holds for ``SpotcheckConsumerBase._isVerifiedBatchOutput``.
"""

from __future__ import annotations

from spotcheck.encoding import BN254_R
from tests.unit.test_receipts import (
    MODEL,
    FakeJobManager,
    KeySigner,
    check,
    commit,
    node,  # noqa: F401 - fixture
    serve,
)


def test_audit_receiptCheck_acceptsOutOfDomainInput_thatNoChallengerWillDispute(
    node: KeySigner,  # noqa: F811
) -> None:
    jm = FakeJobManager()
    question = [BN254_R // 2 + 1, 0, 0, 0]  # outside the field's signed range: no domain has it
    wrong = [123, 456]
    receipt = serve(node, 1, MODEL, question, wrong)
    tree = commit(jm, 7, node.address, MODEL, [receipt])
    result = check(
        jm, receipt, node.address, input_q=question, output_q=wrong, index=0, proof=tree.proof(0)
    )
    assert not result.ok, "an undisputable (out-of-domain) leaf is reported as a checked answer"
    assert result.failures == ["in_domain"]
