"""``spotcheck challenger status`` shows paid checks next to disputes (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from challenger.cli import challenger
from challenger.sampling import SamplingPolicy, proof_text
from challenger.store import ClaimState, ClaimStore, JobState, Store
from spotcheck.chain import TOKEN
from spotcheck.encoding import onchain_job_key, output_hash
from spotcheck.follower import open_db

MODEL = b"\x42" * 32


def test_status_showsClaimsSentPaidForfeitedWithAmounts(tmp_path: Path) -> None:
    store = Store(open_db(tmp_path / "challenger.sqlite"))
    claims = ClaimStore(store)
    policy = SamplingPolicy(secret=b"\x05" * 32, default_rate=1.0)
    for job_id, end in ((1, ClaimState.COLLECTED), (2, ClaimState.FORFEITED)):
        key = onchain_job_key(job_id)
        Store.record_request(store.conn, job_id, MODEL, [1])
        Store.record_onchain_commit(
            store.conn, job_key=key, job_id=job_id, node="0xnode", output_q=[2],
            output_hash=output_hash([2]), challenge_deadline=2000, commit_block=5,
        )  # fmt: skip
        proof = policy.sample(MODEL, b"\x01" * 32, key)
        assert proof is not None
        store.transition(key, JobState.SAMPLED, vrf_proof=proof_text(proof))
        store.transition(key, JobState.MATCHED, witness_diff=0)
        [job] = [j for j in claims.unplanned() if j.job_id == job_id]
        assert claims.plan(job, ClaimState.PLANNED, 1000, None)
        claims.transition(key, ClaimState.SENDING, sent_block=7)
        claims.transition(key, ClaimState.OPEN, tx_hash="0xabc")
        claims.transition(key, end, payout=TOKEN // 2 if job_id == 1 else 3 * TOKEN)
    runner = CliRunner()
    text = runner.invoke(challenger, ["status", "--state-dir", str(tmp_path)])
    assert text.exit_code == 0, text.output
    assert (
        "paid checks: claims sent 2, open 0, paid 1 (0.5 tokens), forfeited 1 (3 tokens)"
        in text.output
    )
    data = json.loads(
        runner.invoke(challenger, ["status", "--state-dir", str(tmp_path), "--json"]).output
    )
    assert data["claims"]["paid"] == 1 and data["claims"]["payouts"] == TOKEN // 2
    assert data["claims"]["forfeits"] == 3 * TOKEN
